"""The training job: one readable loop (STYLE.md rule 15).

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
from dataclasses import asdict, replace
from pathlib import Path

import torch
import yaml
from torch import Tensor, nn
from tqdm.auto import tqdm

from pinsage.atomic import remove_dead_leftovers_in, write_text
from pinsage.config import PipelineConfig, TrainConfig, load_section
from pinsage.errors import ConfigError, DataError, TrainingError
from pinsage.graph.store import Graph, load_graph
from pinsage.nn.features import FeatureStore, text_buckets_for
from pinsage.progress import ProgressLog
from pinsage.threads import fit_torch_threads
from pinsage.train.batch import TrainBatch
from pinsage.train.checkpoint import (
    check_graph,
    graph_key,
    latest_checkpoint,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from pinsage.train.ddp import Replica
from pinsage.train.loader import BatchLoader, BatchMaker
from pinsage.train.model import build_model, make_optimizers, spectral_id_init
from pinsage.train.objective import BatchLoss

__all__ = ["fit", "lr_at", "resolve_device", "resume_checkpoint", "train"]

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


def _plain(cfg: PipelineConfig) -> dict:
    """``cfg`` as config.yaml holds it."""
    return json.loads(json.dumps(asdict(cfg)))  # tuples -> lists for YAML


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
    write_text(out / "config.yaml", yaml.safe_dump(_plain(cfg), sort_keys=False))


def _run_config(out: Path) -> dict | None:
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


def _sized_text(cfg: PipelineConfig, graph_dir: Path, out: Path) -> PipelineConfig:
    """``cfg`` with ``model.text_buckets`` sized to the graph (`text_buckets_for`).

    The configured count is the most a run may use. A run keeps the count it started
    with (its config.yaml), so resuming it never resizes its text table.
    """
    most = cfg.model.text_buckets
    started = (_run_config(out) or {}).get("model", {}).get("text_buckets")
    if isinstance(started, int) and started <= most:
        buckets = started
    else:
        buckets = text_buckets_for(load_graph(graph_dir), most)
    return replace(cfg, model=replace(cfg.model, text_buckets=buckets))


def _fresh_start(out: Path, cfg: PipelineConfig) -> None:
    """Check that ``out``, holding no checkpoint, may start afresh with ``cfg``.

    A run killed before its first checkpoint learned nothing, so it starts again;
    but only with the config it started with: another config is another run.
    """
    started = _run_config(out)
    if started is not None and started != _plain(cfg):
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


def _save(
    out: Path,
    cfg: PipelineConfig,
    graph: Graph,
    model,
    optimizers,
    step: int,
    best: float | None,
    world_size: int,
) -> None:
    save_checkpoint(
        out,
        {
            "model": model.state_dict(),
            "optimizer": [o.state_dict() for o in optimizers],
            "config": asdict(cfg),
            "step": step,
            "best_metric": None if best is None else float(best),  # weights-only
            "rng": rng_state(),
            "graph": graph_key(graph),
            "world_size": world_size,
        },
    )


def train(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    *,
    resume: bool = False,
    device: str = "auto",
    producer: str = "thread",
    evaluate=None,
    until_step: int | None = None,
    workers: int = 1,
    ray_address: str | None = None,
) -> dict:
    """Train a PinSage model on ``graph_dir`` into the run directory ``out``.

    ``evaluate(model, store) -> dict`` (optional) is called at the end of each epoch
    (or every ``train.eval_every`` steps) and its metrics are logged; the best
    ``recall@20`` is kept in checkpoints. ``until_step`` stops early with a checkpoint
    (a time-boxed job; ``resume`` continues it exactly). ``producer`` is the kind of
    batch producers (``thread`` or ``process``, `BatchLoader`). ``workers`` > 1
    trains data-parallel under Ray Train (`pinsage.train.distributed`, on the Ray at
    ``ray_address`` or a local one); 1 trains in this process without Ray. Returns
    the last metrics record. ``cfg.model.text_buckets`` is the most the run may use:
    it uses as many as the graph's text needs (`_sized_text`, in config.yaml).
    """
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    cfg = _sized_text(cfg, Path(graph_dir), Path(out))
    if workers > 1:
        from pinsage.train.distributed import train_distributed

        return train_distributed(
            cfg,
            graph_dir,
            out,
            workers=workers,
            resume=resume,
            device=device,
            producer=producer,
            evaluate=evaluate,
            until_step=until_step,
            ray_address=ray_address,
        )
    fit_torch_threads(cfg.train.torch_threads, producers=cfg.train.num_workers)
    return fit(
        cfg,
        graph_dir,
        out,
        resume=resume,
        device=resolve_device(device),
        producer=producer,
        evaluate=evaluate,
        until_step=until_step,
    )


def fit(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    *,
    resume: bool,
    device: torch.device,
    producer: str,
    evaluate=None,
    until_step: int | None = None,
    replica: Replica | None = None,
) -> dict:
    """The training loop of one process: a whole run, or one replica of a DDP run.

    Arguments as `train`'s; ``replica`` (`pinsage.train.ddp`) is None for a single
    process. Every replica trains the same steps on its own batches; only the main
    one writes config.yaml, metrics.jsonl and checkpoints, and evaluates.
    """
    replica = replica or Replica()
    out, tc = Path(out), cfg.train
    graph = load_graph(graph_dir)
    _check_trainable(graph, tc)
    store = FeatureStore.from_graph(graph, text_buckets=cfg.model.text_buckets)
    torch.manual_seed(tc.seed)  # initial weights (and dropout) flow from the seed
    model = build_model(cfg, graph, store).to(device)
    optimizers = make_optimizers(model, tc)
    start, best = _start(out, cfg, graph, model, optimizers, resume, replica.world_size)
    loss_of = replica.wrap(BatchLoss(model, tc))
    total_steps = tc.epochs * tc.steps_per_epoch
    stop = total_steps if until_step is None else min(until_step, total_steps)
    main = replica.is_main
    if main:
        log.info("training %s: steps %d-%d of %d", out, start, stop, total_steps)
        out.mkdir(parents=True, exist_ok=True)
        remove_dead_leftovers_in(out / "checkpoints")  # what a killed save left
        _write_config(out, cfg)
    maker = BatchMaker(
        Path(graph_dir),
        cfg,
        cfg.model.text_buckets,
        rank=replica.rank,
        world_size=replica.world_size,
    ).with_data(graph, store)
    loader = BatchLoader(
        maker,
        start,
        stop,
        num_workers=tc.num_workers,
        prefetch=tc.prefetch,
        kind=producer,
        pin_memory=device.type == "cuda",
    )
    record: dict = {}
    t_start, pairs_seen = time.perf_counter(), 0
    progress = ProgressLog(log, f"training {out.name}", total_steps, start=start)
    progress.enabled &= main
    with (
        loader,
        # A fresh start drops the records of an attempt killed before a checkpoint.
        open(out / "metrics.jsonl", "a" if start else "w")
        if main
        else nullcontext() as metrics,
        tqdm(
            total=total_steps,
            initial=start,
            desc="train",
            unit="step",
            disable=None if main else True,
        ) as bar,
    ):
        for batch in loader:
            step = batch.step
            lr = lr_at(step, tc, total_steps)
            batch = batch.to(device, non_blocking=True)
            replica.begin_step(step)
            loss = _train_step(loss_of, optimizers, batch, tc, lr, replica)

            pairs_seen += tc.batch_size * replica.world_size
            elapsed = time.perf_counter() - t_start
            record = {
                "step": step + 1,
                "epoch": step // tc.steps_per_epoch + 1,
                "loss": round(loss, 6),
                "lr": lr,
                "pairs_per_s": round(pairs_seen / elapsed, 1),
                "producer_wait": round(loader.wait_seconds / elapsed, 3),
            }
            if (found := replica.fingerprints(model, step)) is not None:
                record["replica_fingerprints"] = found
            if main and evaluate is not None and _eval_due(step, tc):
                model.eval()
                record |= evaluate(model, store)
                if "recall@20" in record:
                    best = max(best or 0.0, record["recall@20"])
            if metrics is not None:
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
            bar.set_postfix(
                loss=f"{record['loss']:.4f}", pairs_s=f"{record['pairs_per_s']:.0f}"
            )
            bar.update(1)
            progress.update(
                step + 1,
                f"epoch {record['epoch']}, loss {record['loss']:.4f}, "
                f"{record['pairs_per_s']:.0f} pairs/s",
            )
            periodic = tc.checkpoint_every and (step + 1) % tc.checkpoint_every == 0
            if main and (periodic or step + 1 == stop):
                _save(
                    out,
                    cfg,
                    graph,
                    model,
                    optimizers,
                    step + 1,
                    best,
                    replica.world_size,
                )
    elapsed = time.perf_counter() - t_start
    log.info("trained %s: steps %d-%d in %.1fs", out, start, stop, elapsed)
    return record
