"""The training loop of one process: one readable loop (STYLE.md rule 15).

set lr -> fwd/bwd -> clip/step -> log -> maybe checkpoint -> maybe evaluate -> stop.
Batches come from the producer-consumer loader; everything random in them is a
function of (seed, step), so resuming from a checkpoint replays the same batches and
ends with the same parameters as an uninterrupted run. `fit` is the loop of one
process; a data-parallel run (`pinsage.train.distributed`) runs it in every worker,
with a `pinsage.train.ddp.DDPReplica` synchronising the step.
"""

from __future__ import annotations

import json
import logging
import math
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from tqdm.auto import tqdm

from pinsage.atomic import remove_dead_leftovers_in, write_text
from pinsage.config import PipelineConfig, TrainConfig, load_section
from pinsage.errors import ConfigError, DataError, TrainingError
from pinsage.features import FeatureStore
from pinsage.graph.store import Graph, load_graph
from pinsage.progress import ProgressLog
from pinsage.run.checkpoint import (
    check_graph,
    graph_key,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pinsage.run.factory import build_model, spectral_id_init
from pinsage.train.batch import TrainBatch
from pinsage.train.ddp import Replica
from pinsage.train.loader import BatchLoader, BatchMaker
from pinsage.train.objective import BatchLoss
from pinsage.train.optimizers import make_optimizers

__all__ = ["fit", "lr_at", "resolve_device", "resume_checkpoint", "started_config"]

log = logging.getLogger(__name__)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Linear warm-up to ``cfg.lr``, then cosine decay to ``cfg.lr / 10``."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``."""
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


def _check_trainable(graph: Graph, cfg: TrainConfig) -> None:
    """`DataError` when ``graph`` gives the objective nothing to learn from.

    Without it such a run trains for hours at loss 0 (one item: no negative differs
    from the positive) or fails deep in the batch code (no item pairs).
    """
    if graph.num_items < 2:
        raise DataError(
            f"{graph.path}: the graph holds {graph.num_items} item; training needs at "
            "least two (each positive is ranked against other items): build it from "
            "interactions with more items."
        )
    if cfg.objective != "context" and not bool((graph.csr.context_degree > 1).any()):
        if cfg.objective == "item":
            raise DataError(
                f"{graph.path}: no context engaged two different items, so "
                "train.objective 'item' has no (query, positive) item pairs; set it "
                "to 'context' or 'both', or add interactions."
            )
        log.warning(
            "%s: no context engaged two different items; only the context objective "
            "trains",
            graph.path,
        )


def _write_config(out: Path, cfg: PipelineConfig) -> None:
    write_text(out / "config.yaml", yaml.safe_dump(cfg.as_plain(), sort_keys=False))


def started_config(out: Path) -> dict | None:
    """The config.yaml a run in ``out`` started with, as plain data; None if none."""
    path = out / "config.yaml"
    if not path.exists():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"{path} is not valid YAML ({exc}); restore it, or train into a new --out."
        ) from exc
    return raw if isinstance(raw, dict) else None


def _fresh_start(out: Path, cfg: PipelineConfig) -> None:
    """Check that ``out``, holding no checkpoint, may start afresh with ``cfg``.

    A run killed before its first checkpoint learned nothing, so it starts again;
    but only with the config it started with: another config is another run.
    """
    started = started_config(out)
    if started is None:
        return
    where = str(out / "config.yaml")
    # Where it runs (device, producers) may change; what it computes may not.
    if load_section(PipelineConfig, started, where).as_plain(
        execution=False
    ) != cfg.as_plain(execution=False):
        raise ConfigError(
            f"{out} holds an unfinished run of another config (no checkpoint yet); "
            f"train it with its own {out / 'config.yaml'}, or choose another --out."
        )


def resume_checkpoint(
    out: Path, cfg: PipelineConfig, graph: Graph, resume: bool, world_size: int = 1
) -> dict | None:
    """The checkpoint a run continues from (``resume``), or None for a new run.

    A run without a checkpoint yet (new, or killed before its first one) starts
    afresh, with or without ``resume``, if its config is ``cfg`` (`_fresh_start`).
    `ConfigError` when ``out`` already holds a checkpoint and ``resume`` is off, or
    when the checkpoint's model differs from ``cfg``'s, or it was trained by another
    number of workers (``world_size``); `CheckpointError` when ``resume`` finds no
    run at all, an unreadable checkpoint, or one trained on another graph.
    """
    out = Path(out)
    if latest_checkpoint(out) is None and (
        not resume or (out / "config.yaml").exists()
    ):
        _fresh_start(out, cfg)
        return None
    if not resume:
        raise ConfigError(f"{out} already holds a run; pass --resume to continue it.")
    checkpoint = load_checkpoint(out)
    _check_graph_matches(checkpoint, graph, cfg, out)
    trained = checkpoint.get("world_size", 1)
    if trained != world_size:
        # Worker r trains batch s * N + r at step s: with another N the resumed run
        # would not be the run it continues.
        raise ConfigError(
            f"{out} was trained by {trained} worker(s); resume it with --workers "
            f"{trained} (asked: {world_size})."
        )
    return checkpoint


def _start(
    out: Path,
    cfg: PipelineConfig,
    graph: Graph,
    model,
    optimizers,
    resume: bool,
    world_size: int,
) -> tuple[int, float | None]:
    """Restore a run's latest checkpoint (``resume``) or check that ``out`` is new.

    Returns (first step to train, best metric so far).
    """
    checkpoint = resume_checkpoint(out, cfg, graph, resume, world_size)
    if checkpoint is None:
        if cfg.model.id_init == "spectral":
            spectral_id_init(model, graph, cfg.sampler.seed)
        return 0, None
    model.load_state_dict(checkpoint["model"])
    for optimizer, state in zip(optimizers, checkpoint["optimizer"], strict=True):
        optimizer.load_state_dict(state)
    set_rng_state(checkpoint["rng"])
    return checkpoint["step"], checkpoint.get("best_metric")


def _grads_finite(grad_norm: Tensor, optimizers: list[torch.optim.Optimizer]) -> bool:
    """Whether the dense gradients' norm and every sparse gradient row are finite.

    One host sync for all of them. After `Replica.after_backward` the gradients are
    the replicas' averages, so every replica reaches the same answer.
    """
    finite = torch.isfinite(grad_norm)
    for optimizer in optimizers[1:]:
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    # _values(): the stored rows, coalesced or not (SparseAdam's grads)
                    finite = finite & torch.isfinite(p.grad._values()).all()
    return bool(finite)


def _diverged(step: int, loss: float, cfg: TrainConfig) -> TrainingError:
    what = f"the loss is {loss}" if not math.isfinite(loss) else "a gradient is NaN/inf"
    return TrainingError(
        f"training diverged at step {step + 1}: {what}. The step was not applied and "
        "nothing was saved after it, so the run's latest checkpoint is the last good "
        f"one. Lower train.lr (now {cfg.lr}) or train.grad_clip (now {cfg.grad_clip}),"
        " check the input features and weights for extreme values, then continue "
        "with --resume or start a new run."
    )


def _train_step(
    loss_of: nn.Module,
    optimizers: list[torch.optim.Optimizer],
    batch: TrainBatch,
    cfg: TrainConfig,
    lr: float,
    replica: Replica,
) -> float:
    """One forward/backward/update on ``batch`` (already on the model's device).

    ``loss_of`` is the `BatchLoss` module, DDP-wrapped in a data-parallel run; the
    replica averages what DDP does not (the sparse tables' gradients). Returns the
    loss averaged over the replicas. A NaN or infinite loss or gradient raises
    `TrainingError` before any weight moves: one such step would make every weight
    NaN and the next checkpoint useless.
    """
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr
    device = batch.query_pos.device
    loss_of.train()
    with torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    ):
        loss = loss_of(batch)
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    loss.backward()
    replica.after_backward()
    # Clipping covers the dense weights (AdamW's, make_optimizers puts it first);
    # sparse rows are bounded by SparseAdam.
    dense_params = optimizers[0].param_groups[0]["params"]
    grad_norm = torch.nn.utils.clip_grad_norm_(dense_params, cfg.grad_clip)
    mean_loss = replica.mean(loss)  # the same on every replica: all stop together
    if not (math.isfinite(mean_loss) and _grads_finite(grad_norm, optimizers)):
        raise _diverged(batch.step, mean_loss, cfg)
    for optimizer in optimizers:
        optimizer.step()
    return mean_loss


def _eval_due(step: int, cfg: TrainConfig) -> bool:
    """Evaluate after ``step``: every ``eval_every`` steps, else at each epoch's end."""
    if cfg.eval_every:
        return (step + 1) % cfg.eval_every == 0
    return (step + 1) % cfg.steps_per_epoch == 0


def _save(run: _Run, step: int) -> None:
    """Checkpoint the run after ``step`` steps (`pinsage.run.checkpoint`)."""
    save_checkpoint(
        run.out,
        {
            "model": run.model.state_dict(),
            "optimizer": [o.state_dict() for o in run.optimizers],
            "config": asdict(run.cfg),
            "step": step,
            "best_metric": None if run.best is None else float(run.best),
            "rng": rng_state(),
            "graph": graph_key(run.graph),
            "world_size": run.replica.world_size,
        },
    )


@dataclass
class _Run:
    """What the loop trains and where it writes: a whole run, or one DDP replica."""

    cfg: PipelineConfig
    out: Path
    graph: Graph
    store: FeatureStore
    model: nn.Module
    optimizers: list[torch.optim.Optimizer]
    replica: Replica
    best: float | None  # best validation recall@20 so far (kept in checkpoints)

    @property
    def main(self) -> bool:
        """Whether this process writes the run (the only one, or DDP's rank 0)."""
        return self.replica.is_main


def _prepare(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    resume: bool,
    device: torch.device,
    replica: Replica,
) -> tuple[_Run, int]:
    """The model, its optimizers and data, restored or fresh; (run, first step)."""
    graph = load_graph(graph_dir)
    _check_trainable(graph, cfg.train)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    torch.manual_seed(cfg.train.seed)  # initial weights (and dropout) from the seed
    model = build_model(cfg, graph, store).to(device)
    optimizers = make_optimizers(model, cfg.train)
    start, best = _start(out, cfg, graph, model, optimizers, resume, replica.world_size)
    run = _Run(cfg, out, graph, store, model, optimizers, replica, best)
    return run, start


def _loader(run: _Run, graph_dir: Path, start: int, stop: int, device) -> BatchLoader:
    """Producers of steps ``start`` .. ``stop`` - 1 (this replica's share of each)."""
    maker = BatchMaker(
        Path(graph_dir),
        run.cfg,
        run.cfg.model.text_buckets,
        rank=run.replica.rank,
        world_size=run.replica.world_size,
    ).with_data(run.graph, run.store)
    return BatchLoader(
        maker,
        start,
        stop,
        producers=run.cfg.execution.producers,
        prefetch=run.cfg.train.prefetch,
        kind=run.cfg.execution.producer,
        pin_memory=device.type == "cuda",
    )


def _metrics_file(run: _Run, start: int):
    """metrics.jsonl to append to (the main process only; others: None)."""
    if not run.main:
        return nullcontext()
    # A fresh start drops the records of an attempt killed before a checkpoint.
    return open(run.out / "metrics.jsonl", "a" if start else "w")


def _after_step(run: _Run, record: dict, stop: int, evaluate, metrics) -> None:
    """Evaluate when due, log the step's record, checkpoint when due (main only)."""
    tc, step = run.cfg.train, record["step"] - 1
    if run.main and evaluate is not None and _eval_due(step, tc):
        run.model.eval()
        record |= evaluate(run.model, run.store)
        if "recall@20" in record:
            run.best = max(run.best or 0.0, record["recall@20"])
    if metrics is not None:
        metrics.write(json.dumps(record) + "\n")
        metrics.flush()
    periodic = tc.checkpoint_every and (step + 1) % tc.checkpoint_every == 0
    if run.main and (periodic or step + 1 == stop):
        _save(run, step + 1)


def fit(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    *,
    resume: bool,
    device: torch.device,
    evaluate=None,
    until_step: int | None = None,
    replica: Replica | None = None,
) -> dict:
    """The training loop of one process: a whole run, or one replica of a DDP run.

    Arguments as `pinsage.train.train`'s, with ``device`` resolved (a DDP replica's
    is the one Ray Train gives it); ``replica`` (`pinsage.train.ddp`) is None
    for a single process. Every replica trains the same steps on its own batches;
    only the main one writes config.yaml, metrics.jsonl and checkpoints, and
    evaluates.
    """
    replica = replica or Replica()
    tc = cfg.train
    run, start = _prepare(cfg, graph_dir, Path(out), resume, device, replica)
    loss_of = replica.wrap(BatchLoss(run.model, tc))
    total_steps = tc.epochs * tc.steps_per_epoch  # the schedule's length
    stop = tc.last_step if until_step is None else min(until_step, tc.last_step)
    if run.main:
        log.info("training %s: steps %d-%d of %d", run.out, start, stop, total_steps)
        run.out.mkdir(parents=True, exist_ok=True)
        remove_dead_leftovers_in(run.out / "checkpoints")  # what a killed save left
        _write_config(run.out, cfg)
    loader = _loader(run, graph_dir, start, stop, device)
    record: dict = {}
    t_start, pairs_seen = time.perf_counter(), 0
    progress = ProgressLog(log, f"training {run.out.name}", stop, start=start)
    progress.enabled &= run.main
    hidden = None if run.main else True  # tqdm's None: hidden off a terminal
    bar = tqdm(total=stop, initial=start, desc="train", unit="step", disable=hidden)
    with loader, _metrics_file(run, start) as metrics, bar:
        for batch in loader:
            step, lr = batch.step, lr_at(batch.step, tc, total_steps)
            replica.begin_step(step)
            batch = batch.to(device, non_blocking=True)
            loss = _train_step(loss_of, run.optimizers, batch, tc, lr, replica)
            pairs_seen += tc.batch_size * replica.world_size
            elapsed = time.perf_counter() - t_start
            record = {"step": step + 1, "epoch": step // tc.steps_per_epoch + 1}
            record |= {"loss": round(loss, 6), "lr": lr}
            record["pairs_per_s"] = round(pairs_seen / elapsed, 1)
            record["producer_wait"] = round(loader.wait_seconds / elapsed, 3)
            if (found := replica.fingerprints(run.model, step)) is not None:
                record["replica_fingerprints"] = found
            _after_step(run, record, stop, evaluate, metrics)
            bar.set_postfix(loss=f"{loss:.4f}", pairs_s=f"{record['pairs_per_s']:.0f}")
            bar.update(1)
            progress.update(
                step + 1,
                f"epoch {record['epoch']}, loss {loss:.4f}, "
                f"{record['pairs_per_s']:.0f} pairs/s",
            )
    elapsed = time.perf_counter() - t_start
    log.info("trained %s: steps %d-%d in %.1fs", run.out, start, stop, elapsed)
    return record
