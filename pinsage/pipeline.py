"""`pinsage pipeline`: every stage in order under one run root, completed ones skipped.

    ROOT/data/            generated or imported data (a data folder the config names
                          is read in place)
    ROOT/split/           the validation split carved from the training interactions
                          (fit.parquet, validation.parquet; `data.validation_share`)
    ROOT/graph/           `pinsage graph build` over every training interaction
    ROOT/fit-graph/       the same nodes over fit.parquet: what training sees
    ROOT/run/             `pinsage train` on the fit graph, evaluated on validation
                          at each epoch's end (checkpoints, metrics.jsonl); eval.json
                          is the test file's figure, once, on the full graph, with
                          the training-free baselines beside it
    ROOT/embeddings/      `pinsage embed`
    ROOT/index/           `pinsage index build`
    ROOT/manifest.json    what ties them together: config hash, code version,
                          checkpoint hash, and per stage its seconds and whether
                          this run skipped it

Each stage is the library call its command makes, and each of those is idempotent:
a complete output for the same inputs is left alone, an interrupted one is finished
(training resumes from its latest checkpoint, exactly) or redone from scratch (every
other artifact is written to a temporary sibling and renamed). So a pipeline killed
at any point and run again ends with the index an uninterrupted run makes. One
pipeline at a time holds a root (``ROOT/.lock``, an flock the kernel releases when
the process dies, however it dies); the holder first removes the temporary siblings
a killed run left.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pinsage
from pinsage.atomic import read_json, remove_dead_leftovers_in, write_json
from pinsage.config import PipelineConfig
from pinsage.errors import ConfigError, DataError
from pinsage.manifests import EmbeddingsManifest, RootManifest, StageRecord

__all__ = ["STAGES", "RunRoot", "config_sha256", "run_pipeline"]

log = logging.getLogger(__name__)

STAGES = ("data", "graph", "train", "eval", "embed", "index")
FORMAT_VERSION = 1
EVAL_KS = (10, 20)
LOCK_FILE = ".lock"


class RunRoot:
    """The folders of a run root (see the module docstring)."""

    def __init__(self, root: Path, cfg: PipelineConfig) -> None:
        self.root = Path(root)
        in_place = cfg.data.path is not None and cfg.data.format == "folder"
        self.data = Path(cfg.data.path) if in_place else self.root / "data"
        self.split = self.root / "split"
        self.graph = self.root / "graph"
        self.fit_graph = self.root / "fit-graph"
        self.run = self.root / "run"
        self.embeddings = self.root / "embeddings"
        self.index = self.root / "index"
        self.manifest = self.root / "manifest.json"


def config_sha256(cfg: PipelineConfig) -> str:
    """Hex sha256 of the resolved config (every key, defaults included).

    How the run executes (the ``execution`` section) is left out: the same run
    moved to a GPU or a cluster is still the same run (`ExecutionConfig`).
    """
    text = json.dumps(cfg.as_plain(execution=False), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def code_version() -> str:
    """The package version, with the git commit when run from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return pinsage.__version__
    return f"{pinsage.__version__}+g{commit}"


def _data(cfg: PipelineConfig, paths: RunRoot, overwrite: bool) -> None:
    if cfg.data.path is None:
        from pinsage.data.synth import synthesize

        synthesize(cfg.synth, paths.data, overwrite=overwrite)
    elif cfg.data.format == "folder":
        if not (paths.data / "interactions.parquet").exists():
            raise DataError(
                f"data.path '{paths.data}' holds no interactions.parquet; point it at "
                "a data folder (`pinsage data synth` / `data import` write one) or "
                "set data.format to the source's format to import it."
            )
    else:
        from pinsage.data.importers import import_folder

        import_folder(
            cfg.data.format,
            Path(cfg.data.path),
            paths.data,
            test_fraction=cfg.data.test_fraction,
            min_rating=cfg.data.min_rating,
            rating_weights=cfg.data.rating_weights,
            cold_items=cfg.data.cold_items,
            overwrite=overwrite,
        )
    if cfg.data.validation_share > 0:
        from pinsage.data.split import split_validation

        split_validation(
            paths.data / "interactions.parquet",
            paths.split,
            cfg.data.validation_share,
            cfg.data.validation_seed,
        )


def _graph(cfg: PipelineConfig, paths: RunRoot, overwrite: bool) -> None:
    from pinsage.graph import build_graph, load_graph
    from pinsage.run import graph_key

    items = paths.data / "items.parquet"
    items = items if items.exists() else None
    build_graph(
        paths.data / "interactions.parquet",
        paths.graph,
        items=items,
        overwrite=overwrite,
    )
    if cfg.data.validation_share > 0:
        build_graph(
            paths.split / "fit.parquet",
            paths.fit_graph,
            items=items,
            overwrite=overwrite,
        )
        full = graph_key(load_graph(paths.graph))
        fit = graph_key(load_graph(paths.fit_graph))
        assert full == fit, f"the split keeps every node, yet {fit} != {full}"


def _training_graph(cfg: PipelineConfig, paths: RunRoot) -> Path:
    """The graph training sees: without the validation interactions, when held out."""
    return paths.fit_graph if cfg.data.validation_share > 0 else paths.graph


def _train(cfg: PipelineConfig, paths: RunRoot, overwrite: bool) -> bool:
    """Train, or finish an interrupted run; False when the run was complete.

    With a validation split, the run is evaluated on it at each epoch's end (its
    curve goes into metrics.jsonl and the report); the test file is never read
    here. ``execution.workers`` > 1 trains data-parallel under Ray Train (on
    ``execution.ray_address``, the job's cluster under `ray job submit`, else a
    local Ray).
    """
    from pinsage.eval.job import check_baselines, evaluator
    from pinsage.graph import load_graph
    from pinsage.run import latest_checkpoint, load_checkpoint
    from pinsage.train import train

    if overwrite:
        shutil.rmtree(paths.run, ignore_errors=True)
    resume = latest_checkpoint(paths.run) is not None
    if resume:
        if load_checkpoint(paths.run)["step"] >= cfg.train.last_step:
            return False
    else:
        shutil.rmtree(paths.run, ignore_errors=True)  # killed before a checkpoint
    check_baselines(load_graph(paths.graph), cfg.eval.baselines)  # before, not after
    evaluate = None
    if cfg.data.validation_share > 0:
        validation = paths.split / "validation.parquet"
        evaluate = evaluator(load_graph(paths.fit_graph), validation, cfg, EVAL_KS)
    train(
        cfg,
        _training_graph(cfg, paths),
        paths.run,
        resume=resume,
        evaluate=evaluate,
    )
    return True


# Why eval did not run on data without a test file, in the log and the run manifest.
NO_TEST_SPLIT = (
    "no test split: set data.test_fraction (`data import --test-fraction`) to hold "
    "out a share of each user's interactions and evaluate"
)


def _eval(cfg: PipelineConfig, paths: RunRoot, overwrite: bool) -> bool | str:
    """Evaluate on the held-out interactions; False when done, why if there are none."""
    from pinsage.eval.job import evaluate_run
    from pinsage.run import load_checkpoint

    test = paths.data / "test.parquet"
    if not test.exists():
        return NO_TEST_SPLIT
    done = paths.run / "eval.json"
    step = load_checkpoint(paths.run)["step"]
    if not overwrite and done.exists() and read_json(done).get("step") == step:
        return False
    evaluate_run(paths.run, paths.graph, test, EVAL_KS, cfg.eval.baselines)
    return True


def _embed(cfg: PipelineConfig, paths: RunRoot, overwrite: bool) -> None:
    from pinsage.infer import embed

    embed(
        paths.run,
        paths.graph,
        paths.embeddings,
        engine=cfg.embed.engine,
        ray_address=cfg.execution.ray_address,
        contexts=cfg.embed.contexts,
        overwrite=overwrite,
    )


def _index(cfg: PipelineConfig, paths: RunRoot, overwrite: bool) -> None:
    from pinsage.index import build_index

    build_index(paths.embeddings, paths.index, kind=cfg.index.kind, overwrite=overwrite)


_RUNNERS: dict[str, Callable[[PipelineConfig, RunRoot, bool], bool | None]] = {
    "data": _data,
    "graph": _graph,
    "train": _train,
    "eval": _eval,
    "embed": _embed,
    "index": _index,
}
# Stages whose output folder has a manifest: unchanged manifest = skipped.
_OUTPUTS = {"data": "data", "graph": "graph", "embed": "embeddings", "index": "index"}


def _output_manifest(paths: RunRoot, stage: str) -> str | None:
    folder = _OUTPUTS.get(stage)
    if folder is None:
        return None
    path = getattr(paths, folder) / "manifest.json"
    return path.read_text() if path.exists() else None


@contextlib.contextmanager
def _exclusive(root: Path) -> Iterator[None]:
    """Hold ``root``'s lock for the block; `ConfigError` if another process holds it.

    Then remove what killed runs left at the top of the root: temporary siblings
    (``.NAME.tmp-*``) and set-aside old artifacts (``.NAME.old-*``) whose writer is
    dead (`pinsage.atomic.remove_dead_leftovers_in`): a standalone command writing
    into the root without the lock keeps its own.
    """
    with open(root / LOCK_FILE, "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            raise ConfigError(
                f"another pipeline (pid {lock.read().strip() or '?'}) is running on "
                f"{root}; wait for it to finish or use another --root."
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        remove_dead_leftovers_in(root)
        yield


def _read_root_manifest(
    paths: RunRoot, cfg_hash: str, overwrite: bool
) -> RootManifest | None:
    """The root's manifest, None for a new root; `ConfigError` for another config."""
    if not paths.manifest.exists():
        return None
    manifest = RootManifest.from_json(read_json(paths.manifest), paths.manifest)
    if manifest.config_sha256 != cfg_hash and not overwrite:
        raise ConfigError(
            f"{paths.root} holds a run of another config (config sha256 "
            f"{manifest.config_sha256[:12]}, this one {cfg_hash[:12]}); "
            "choose another --root, or pass --overwrite to redo every stage."
        )
    return manifest


def run_pipeline(
    cfg: PipelineConfig,
    root: Path,
    *,
    stages: Sequence[str] = STAGES,
    overwrite: bool = False,
) -> dict:
    """Run ``stages`` (in pipeline order) under ``root``; return the root manifest.

    ``overwrite`` redoes the given stages even when complete; how the jobs run is
    ``cfg.execution`` (its ``workers`` recorded with the train stage). A
    stage whose input is missing (say ``embed`` before ``train`` ever ran) fails
    with the error of the library call, which names the missing folder.
    """
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ConfigError(f"unknown stage(s) {unknown}; the stages are {list(STAGES)}")
    paths = RunRoot(root, cfg)
    paths.root.mkdir(parents=True, exist_ok=True)
    with _exclusive(paths.root):
        return _run_stages(cfg, paths, stages, overwrite)


def _run_stages(
    cfg: PipelineConfig,
    paths: RunRoot,
    stages: Sequence[str],
    overwrite: bool,
) -> RootManifest:
    cfg_hash = config_sha256(cfg)
    previous = _read_root_manifest(paths, cfg_hash, overwrite)
    manifest = RootManifest(
        config_sha256=cfg_hash,
        code_version=code_version(),
        dataset=cfg.data.path or "synthetic",
        format_version=FORMAT_VERSION,
        stages=dict(previous.stages) if previous else {},
        checkpoint_sha256=previous.checkpoint_sha256 if previous else None,
    )
    for stage in (s for s in STAGES if s in stages):
        before = _output_manifest(paths, stage)
        t0 = time.perf_counter()
        ran = _RUNNERS[stage](cfg, paths, overwrite)
        seconds = time.perf_counter() - t0
        reason = ran if isinstance(ran, str) else None  # could not run, and why
        if reason is not None:
            ran = False
        elif ran is None:  # the stage's own manifest says whether it did anything
            ran = overwrite or _output_manifest(paths, stage) != before
        workers = cfg.execution.workers if stage == "train" else None
        manifest.stages[stage] = _stage_record(
            manifest.stages.get(stage), ran, seconds, reason, workers
        )
        what = "done" if ran else reason or "already complete"
        log.info("stage %s %s in %.1fs", stage, what, seconds)
        if stage == "embed":
            embedded = EmbeddingsManifest.read(paths.embeddings)
            sha = embedded.checkpoint_sha256 if embedded else None
            manifest = replace(manifest, checkpoint_sha256=sha)
        write_json(paths.manifest, manifest.to_json())  # after every stage
    return manifest


def _stage_record(
    previous: StageRecord | None,
    ran: bool,
    seconds: float,
    reason: str | None,
    workers: int | None,
) -> StageRecord:
    """What the root manifest records of a stage that ran or was skipped.

    A skipped stage keeps the time (and the workers) of the run that did the work.
    """
    if not ran:
        seconds = previous.seconds if previous else seconds
        workers = previous.workers if previous else None
    return StageRecord(
        seconds=round(seconds, 2),
        skipped=not ran,
        finished=datetime.now(UTC).isoformat(timespec="seconds"),
        workers=workers,
        reason=reason,
    )
