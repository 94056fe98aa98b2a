"""The training job: one readable loop (STYLE.md rule 15).

set lr -> fwd/bwd -> clip/step -> log -> maybe checkpoint -> maybe evaluate -> stop.
Batches come from the producer-consumer loader; everything random in them is a
function of (seed, step), so resuming from a checkpoint replays the same batches and
ends with the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict
from pathlib import Path

import torch
import yaml
from tqdm.auto import tqdm

from pinsage.config import PipelineConfig, TrainConfig, load_section
from pinsage.errors import ConfigError
from pinsage.graph.store import Graph, load_graph
from pinsage.nn.features import FeatureStore
from pinsage.train.checkpoint import (
    check_graph,
    graph_key,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pinsage.train.loader import BatchLoader, BatchMaker
from pinsage.train.model import build_model, make_optimizers
from pinsage.train.objective import batch_loss

__all__ = ["lr_at", "train"]

log = logging.getLogger(__name__)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to ``cfg.lr / 10``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _check_graph_matches(
    checkpoint: dict, graph: Graph, cfg: PipelineConfig, out: Path
) -> None:
    check_graph(checkpoint, graph, out)
    saved_cfg = load_section(PipelineConfig, checkpoint["config"], "checkpoint config")
    if (
        saved_cfg.model != cfg.model
        or saved_cfg.sampler.num_layers != cfg.sampler.num_layers
    ):
        raise ConfigError(
            "the config's model section differs from the checkpoint's; resume with the "
            "run's own config.yaml, or train a new run."
        )


def _write_config(out: Path, cfg: PipelineConfig) -> None:
    raw = json.loads(json.dumps(asdict(cfg)))  # tuples -> lists for YAML
    (out / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def _start(
    out: Path, cfg: PipelineConfig, graph: Graph, model, optimizers, resume: bool
) -> tuple[int, float | None]:
    """Restore a run's latest checkpoint (``resume``) or check that ``out`` is new.

    Returns (first step to train, best metric so far).
    """
    if not resume:
        if (out / "checkpoints").exists():
            raise ConfigError(
                f"{out} already holds a run; pass --resume to continue it."
            )
        return 0, None
    checkpoint = load_checkpoint(out)
    _check_graph_matches(checkpoint, graph, cfg, out)
    model.load_state_dict(checkpoint["model"])
    for optimizer, state in zip(optimizers, checkpoint["optimizer"], strict=True):
        optimizer.load_state_dict(state)
    set_rng_state(checkpoint["rng"])
    return checkpoint["step"], checkpoint.get("best_metric")


def _train_step(model, optimizers, dense_params, batch, cfg: TrainConfig, lr: float):
    """One forward/backward/update on ``batch`` (already on the model's device)."""
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
    device = batch.query_pos.device
    model.train()
    with torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    ):
        loss = batch_loss(model, batch, cfg)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    # Clipping covers the dense weights; sparse rows are bounded by SparseAdam.
    torch.nn.utils.clip_grad_norm_(dense_params, cfg.grad_clip)
    for optimizer in optimizers:
        optimizer.step()
    return loss


def _save(
    out: Path,
    cfg: PipelineConfig,
    graph: Graph,
    model,
    optimizers,
    step: int,
    best: float | None,
) -> None:
    save_checkpoint(
        out,
        {
            "model": model.state_dict(),
            "optimizer": [o.state_dict() for o in optimizers],
            "config": asdict(cfg),
            "step": step,
            "best_metric": best,
            "rng": rng_state(),
            "graph": graph_key(graph),
        },
    )


def train(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    *,
    resume: bool = False,
    device: str = "auto",
    worker_kind: str = "thread",
    evaluate=None,
    until_step: int | None = None,
) -> dict:
    """Train a PinSage model on ``graph_dir`` into the run directory ``out``.

    ``evaluate(model, store) -> dict`` (optional) is called at the end of each epoch
    (or every ``train.eval_every`` steps) and its metrics are logged; the best
    ``recall@20`` is kept in checkpoints. ``until_step`` stops early with a checkpoint
    (a time-boxed job; ``resume`` continues it exactly). Returns the last record.
    """
    out, dev, tc = Path(out), _device(device), cfg.train
    graph = load_graph(graph_dir)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    torch.manual_seed(tc.seed)  # initial weights (and dropout) flow from the seed
    model = build_model(cfg, graph, store).to(dev)
    optimizers = make_optimizers(model, tc)
    dense_params = optimizers[0].param_groups[0]["params"]
    start, best = _start(out, cfg, graph, model, optimizers, resume)
    total_steps = tc.epochs * tc.steps_per_epoch
    stop = total_steps if until_step is None else min(until_step, total_steps)
    log.info("training %s: steps %d-%d of %d", out, start, stop, total_steps)
    out.mkdir(parents=True, exist_ok=True)
    _write_config(out, cfg)
    maker = BatchMaker(Path(graph_dir), cfg, cfg.model.text_buckets)
    maker.with_data(graph, store)
    loader = BatchLoader(
        maker,
        start,
        stop,
        num_workers=tc.num_workers,
        prefetch=tc.prefetch,
        kind=worker_kind,
        pin_memory=dev.type == "cuda",
    )
    record: dict = {}
    t_start, pairs_seen = time.perf_counter(), 0
    with (
        loader,
        open(out / "metrics.jsonl", "a") as metrics,
        tqdm(
            total=total_steps, initial=start, desc="train", unit="step", disable=None
        ) as bar,
    ):
        for batch in loader:
            step = batch.step
            lr = lr_at(step, tc, total_steps)
            batch = batch.to(dev, non_blocking=True)
            loss = _train_step(model, optimizers, dense_params, batch, tc, lr)

            pairs_seen += tc.batch_size
            elapsed = time.perf_counter() - t_start
            record = {
                "step": step + 1,
                "epoch": step // tc.steps_per_epoch + 1,
                "loss": round(loss.item(), 6),
                "lr": lr,
                "pairs_per_s": round(pairs_seen / elapsed, 1),
                "producer_wait": round(loader.wait_seconds / elapsed, 3),
            }
            epoch_end = (step + 1) % tc.steps_per_epoch == 0
            due = tc.eval_every and (step + 1) % tc.eval_every == 0
            if evaluate is not None and (due or (not tc.eval_every and epoch_end)):
                model.eval()
                record |= evaluate(model, store)
                if "recall@20" in record:
                    best = max(best or 0.0, record["recall@20"])
            metrics.write(json.dumps(record) + "\n")
            metrics.flush()
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", pairs_s=f"{record['pairs_per_s']:.0f}"
            )
            bar.update(1)
            periodic = tc.checkpoint_every and (step + 1) % tc.checkpoint_every == 0
            if periodic or step + 1 == stop:
                _save(out, cfg, graph, model, optimizers, step + 1, best)
    log.info(
        "trained %s: steps %d-%d in %.1fs",
        out,
        start,
        stop,
        time.perf_counter() - t_start,
    )
    return record
