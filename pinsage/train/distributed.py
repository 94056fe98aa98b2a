"""Data-parallel training under Ray Train: ``execution.workers`` (``--workers N``) > 1.

Ray Train's `TorchTrainer` starts N worker processes and a ``torch.distributed``
group among them (gloo on CPU, NCCL on GPU); each runs the single-process loop
(`pinsage.train.loop.fit`) with a `DDPReplica`, so the step is the same code in both
paths. Each worker memory-maps the graph (the OS shares its pages), runs its own
producer-consumer loader and draws its own batches (draw ``step * N + rank`` of the
run's seeded batch stream, `BatchMaker`); ``train.batch_size`` is per worker, so a
step trains on N x batch_size pairs. Rank 0 alone writes config.yaml,
metrics.jsonl and checkpoints, through the single-process checkpoint code, so a
distributed run's checkpoint loads, resumes and embeds like any other. On a cluster,
the run and graph directories must be on storage every node sees at the same path.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import ray.train
import ray.train.torch
import torch
from ray.train import RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from pinsage.config import PipelineConfig
from pinsage.errors import ConfigError, PinsageError
from pinsage.graph.store import load_graph
from pinsage.ray_session import cluster_address, ray_session
from pinsage.threads import usable_cpus
from pinsage.train.ddp import DDPReplica
from pinsage.train.loop import fit, resolve_device, resume_checkpoint

__all__ = ["train_distributed"]

log = logging.getLogger(__name__)


def _worker(config: dict) -> None:
    """One Ray Train worker: the loop of `fit` as replica ``rank`` of the group."""
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(config["torch_threads"])
    cfg: PipelineConfig = config["cfg"]
    device = ray.train.torch.get_device() if config["use_gpu"] else torch.device("cpu")
    replica = DDPReplica(rank, world_size, cfg.train.seed, config["verify_every"])
    fit(
        cfg,
        config["graph_dir"],
        config["out"],
        resume=config["resume"],
        device=device,
        evaluate=config["evaluate"] if rank == 0 else None,
        until_step=config["until_step"],
        replica=replica,
    )


def _last_record(metrics: Path, offset: int) -> dict:
    """The last record written to ``metrics`` past byte ``offset`` ({} if none)."""
    if not metrics.exists():
        return {}
    with open(metrics, "rb") as f:
        f.seek(offset)
        lines = f.read().decode().splitlines()
    return json.loads(lines[-1]) if lines else {}


def _user_error(exc: ray.train.WorkerGroupError) -> PinsageError | None:
    """The first worker's `PinsageError` (a user-fixable problem), if any."""
    for failure in exc.worker_failures.values():
        cause: BaseException | None = failure
        while cause is not None:
            if isinstance(cause, PinsageError):
                return cause
            cause = cause.__cause__
    return None


def train_distributed(
    cfg: PipelineConfig,
    graph_dir: Path,
    out: Path,
    *,
    resume: bool = False,
    evaluate=None,
    until_step: int | None = None,
    verify_every: int = 0,
) -> dict:
    """Train like `pinsage.train.train`, data-parallel over ``execution.workers``.

    Runs on the Ray cluster of ``execution.ray_address`` (or $RAY_ADDRESS), on the
    Ray this process already runs, or on a local Ray started here with one CPU per
    worker and no dashboard (shut down at the end). ``execution.device``: ``auto``
    puts each worker on a GPU when this machine has CUDA, ``cuda`` asks for GPU
    workers, ``cpu`` for CPU ones. ``evaluate`` travels to the workers by pickle and
    runs on rank 0. Torch threads per worker: ``execution.torch_threads``, else the
    CPUs this process may use / workers, so the workers do not oversubscribe a
    shared machine. ``verify_every``: see `DDPReplica`. Returns the last metrics
    record.
    """
    execution = cfg.execution
    workers = execution.workers
    if workers < 2:
        raise ConfigError(f"train_distributed needs workers >= 2, got {workers}")
    out, graph_dir = Path(out).resolve(), Path(graph_dir).resolve()
    # Fail here, with the loop's own messages, not inside N worker processes.
    resume_checkpoint(out, cfg, load_graph(graph_dir), resume, workers)
    use_gpu = resolve_device(execution.device).type == "cuda"
    config = {
        "cfg": cfg,
        "graph_dir": graph_dir,
        "out": out,
        "resume": resume,
        "evaluate": evaluate,
        "until_step": until_step,
        "use_gpu": use_gpu,
        "torch_threads": execution.torch_threads or max(1, usable_cpus() // workers),
        "verify_every": verify_every,
    }
    # Rank 0 writes the records; Ray Train keeps reported metrics only with
    # checkpoints of its own, so the driver reads the last one back from the file.
    metrics = out / "metrics.jsonl"
    offset = metrics.stat().st_size if metrics.exists() else 0
    address = cluster_address(execution.ray_address)
    log.info("training %s on %d %s workers", out, workers, "GPU" if use_gpu else "CPU")
    with (
        ray_session(address, None if address else workers),
        tempfile.TemporaryDirectory(prefix="pinsage-ray-train-") as scratch,
    ):
        # Ray Train's storage holds only its own run state (the run's checkpoints
        # go to ``out``): a scratch folder locally; on a cluster, Ray's default.
        _fit(config, workers, use_gpu, out.name, None if address else scratch)
    return _last_record(metrics, offset)


def _fit(
    config: dict, workers: int, use_gpu: bool, name: str, storage: str | None
) -> None:
    """Run `_worker` on ``workers`` Ray Train workers; a user's error raised as is."""
    trainer = TorchTrainer(
        _worker,
        train_loop_config=config,
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(name=name, storage_path=storage),
    )
    try:
        trainer.fit()
    except ray.train.WorkerGroupError as exc:
        user_error = _user_error(exc)
        if user_error is not None:
            raise user_error from exc
        raise
