"""The training job: `train` runs the loop in this process, or data-parallel on Ray.

One process runs `pinsage.train.loop.fit`; ``execution.workers`` > 1 hands the same
loop to Ray Train (`pinsage.train.distributed`), which runs it in every worker. Either
way the run's text-table size is fixed first (`_sized_text`), so every replica
agrees on it.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from pinsage.config import PipelineConfig
from pinsage.features import text_buckets_for
from pinsage.graph.store import load_graph
from pinsage.threads import fit_torch_threads
from pinsage.train.loop import fit, resolve_device, started_config

__all__ = ["train"]


def _sized_text(cfg: PipelineConfig, graph_dir: Path, out: Path) -> PipelineConfig:
    """``cfg`` with ``model.text_buckets`` sized to the graph (`text_buckets_for`).

    The configured count is the most a run may use. A run keeps the count it started
    with (its config.yaml), so resuming it never resizes its text table.
    """
    most = cfg.model.text_buckets
    started = (started_config(out) or {}).get("model", {}).get("text_buckets")
    if isinstance(started, int) and started <= most:
        buckets = started
    else:
        buckets = text_buckets_for(load_graph(graph_dir), most)
    return replace(cfg, model=replace(cfg.model, text_buckets=buckets))


def train(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    *,
    resume: bool = False,
    evaluate=None,
    until_step: int | None = None,
) -> dict:
    """Train a PinSage model on ``graph_dir`` into the run directory ``out``.

    ``evaluate(model, store) -> dict`` (optional) is called at the end of each epoch
    (or every ``train.eval_every`` steps) and its metrics are logged; the best
    ``recall@20`` is kept in checkpoints. ``until_step`` stops early with a checkpoint
    (a time-boxed job; ``resume`` continues it exactly). How it runs is
    ``cfg.execution``: the device, the batch producers, and ``workers`` > 1 trains
    data-parallel under Ray Train (`pinsage.train.distributed`); 1 trains in this
    process without Ray. Returns the last metrics record. ``cfg.model.text_buckets``
    is the most the run may use: it uses as many as the graph's text needs
    (`_sized_text`, in config.yaml).
    """
    cfg = _sized_text(cfg, Path(graph_dir), Path(out))
    execution = cfg.execution
    if execution.workers > 1:
        from pinsage.train.distributed import train_distributed

        return train_distributed(
            cfg, graph_dir, out, resume=resume, evaluate=evaluate, until_step=until_step
        )
    fit_torch_threads(execution.torch_threads, producers=execution.producers)
    return fit(
        cfg,
        graph_dir,
        out,
        resume=resume,
        device=resolve_device(execution.device),
        evaluate=evaluate,
        until_step=until_step,
    )
