"""The report's figures, drawn with matplotlib's Agg canvas and returned as PNG bytes.

Figures are built with the object API (`matplotlib.figure.Figure` on a
`FigureCanvasAgg`), never pyplot: no global figure state and no display backend, so
reports can be made from threads and on machines without a display.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from pinsage.report.collect import EVAL_KEY

__all__ = ["Plot", "training_plots"]

SIZE = (6.4, 3.4)  # inches: two figures side by side fill a 1280-pixel page
WIDE = (12.8, 3.4)  # a figure of two panels takes the page's whole width
DPI = 100
SMOOTH_POINTS = 50  # a loss curve of more steps than this gets a moving average


@dataclass(frozen=True)
class Plot:
    """A drawn figure: its title, a caption saying how to read it, PNG bytes."""

    title: str
    caption: str
    png: bytes
    wide: bool = False


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def _series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the rows that hold a number under ``key``."""
    pairs = [
        (r["step"], r[key])
        for r in rows
        if isinstance(r.get(key), int | float) and not isinstance(r.get(key), bool)
    ]
    steps, values = zip(*pairs, strict=True) if pairs else ((), ())
    return np.asarray(steps, dtype=float), np.asarray(values, dtype=float)


def _style(ax, ylabel: str) -> None:
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)


def loss_plot(rows: list[dict]) -> Plot | None:
    """Training loss per step, with a moving average over long runs."""
    steps, loss = _series(rows, "loss")
    if not len(steps):
        return None
    fig = Figure(figsize=SIZE)
    ax = fig.add_subplot()
    many = len(loss) > SMOOTH_POINTS
    ax.plot(steps, loss, lw=1, alpha=0.35 if many else 1.0, label="per step")
    caption = "Loss of each training step's minibatch."
    if many:
        window = len(loss) // SMOOTH_POINTS * 2 + 1
        smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window // 2 : -(window // 2)], smooth, lw=2, label="average")
        ax.legend(frameon=False)
        caption += f" The bold line is its moving average over {window} steps."
    _style(ax, "loss")
    return Plot("Training loss", caption, _png(fig))


def eval_plot(rows: list[dict]) -> Plot | None:
    """Every evaluation metric logged during training, over steps."""
    keys = sorted({k for r in rows for k in r if EVAL_KEY.match(k)})
    if not keys:
        return None
    fig = Figure(figsize=SIZE)
    ax = fig.add_subplot()
    for key in keys:
        steps, values = _series(rows, key)
        ax.plot(steps, values, marker="o", ms=4, label=key)
    ax.legend(frameon=False, fontsize="small")
    _style(ax, "metric")
    caption = (
        "Evaluation during training on the validation split: user-to-item "
        "recall / NDCG@K (full ranking), item-to-item hit rate@K and scaled MRR."
    )
    return Plot("Evaluation", caption, _png(fig))


def throughput_plot(rows: list[dict]) -> Plot | None:
    """Pairs/s and the trainer's producer-wait share, over steps."""
    steps, rate = _series(rows, "pairs_per_s")
    wait_steps, wait = _series(rows, "producer_wait")
    if not len(steps) and not len(wait_steps):
        return None
    fig = Figure(figsize=WIDE)
    left, right = fig.subplots(1, 2)
    left.plot(steps, rate, lw=1.5)
    _style(left, "training pairs / s")
    right.plot(wait_steps, 100 * wait, lw=1.5, color="tab:red")
    right.set_ylim(0, 100)
    _style(right, "producer wait (% of time)")
    caption = (
        "Both are running averages since the run (or its resumption) started: pairs "
        "trained per second, and the share of time the trainer waited for the "
        "producer's next batch (high: batch making is the bottleneck)."
    )
    return Plot("Throughput", caption, _png(fig), wide=True)


def training_plots(rows: list[dict]) -> list[Plot]:
    """The figures the training rows allow: loss, evaluation, throughput."""
    plots = (loss_plot(rows), eval_plot(rows), throughput_plot(rows))
    return [p for p in plots if p is not None]
