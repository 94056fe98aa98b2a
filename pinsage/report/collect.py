"""Read a run root into plain data: what the report shows, and what is missing.

    ROOT/manifest.json   dataset, config hash, code version, seconds per stage
                         (written by `pinsage pipeline`)
    ROOT/run/            metrics.jsonl (a row per step), eval.json, config.yaml
    ROOT/graph/          manifest.json (counts); degrees pick the sample items
    ROOT/embeddings/     manifest.json
    ROOT/index/          manifest.json (kind, factory, count, recall@10); lookups
    ROOT/data/           items.parquet, item_clusters.parquet (the samples' features)

Every part is optional: one that is absent or unreadable becomes a line of
``RunData.missing`` and the rest is still read. Only a root that does not exist, or
holds none of these, is an error.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import yaml

from pinsage.atomic import complete_manifest
from pinsage.config import PipelineConfig, load_section
from pinsage.errors import DataError, PinsageError
from pinsage.graph.store import Graph, load_graph
from pinsage.index.search import Index
from pinsage.manifests import EmbeddingsManifest, GraphManifest, IndexManifest
from pinsage.pipeline import STAGES, config_sha256
from pinsage.report.neighbors import SampleLookup, sample_lookups

__all__ = ["EVAL_KEY", "RunData", "StageTiming", "collect_run", "read_metrics"]

log = logging.getLogger(__name__)

# Evaluation keys of a metrics.jsonl row or eval.json (pinsage.eval): the curves.
EVAL_KEY = re.compile(r"^(recall|ndcg|hit_rate)@\d+$|^mrr$")
_PARTS = ("manifest.json", "run", "graph", "embeddings", "index")
# Keys of a training row that are not evaluation results (pinsage.train.loop).
_TRAIN_KEYS = ("epoch", "loss", "lr", "pairs_per_s", "producer_wait")


@dataclass(frozen=True)
class StageTiming:
    """One stage of the root manifest; None where the manifest does not say."""

    name: str
    seconds: float | None
    skipped: bool | None
    finished: str | None
    reason: str | None = None  # why a stage could not run (eval without a test split)


@dataclass
class RunData:
    """Everything the report shows about one run root."""

    root: Path
    generated: str  # when the report was made (UTC, ISO 8601)
    dataset: str | None = None
    config_sha256: str | None = None
    code_version: str | None = None
    stages: list[StageTiming] = field(default_factory=list)
    train_rows: list[dict] = field(default_factory=list)  # one per step, in order
    final_metrics: dict = field(default_factory=dict)
    final_source: str | None = None  # where final_metrics came from
    # Training-free baselines ranked on the same graph and test file (eval.json).
    baselines: dict = field(default_factory=dict)
    graph: GraphManifest | None = None  # graph/manifest.json
    embeddings: EmbeddingsManifest | None = None  # embeddings/manifest.json
    index: IndexManifest | None = None  # index/manifest.json
    samples: list[SampleLookup] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def finished(self) -> str | None:
        """When the last recorded stage finished, if the manifest says."""
        return max((s.finished for s in self.stages if s.finished), default=None)


def read_metrics(path: Path) -> tuple[list[dict], int]:
    """Rows of a metrics.jsonl, one per step in step order, and the unreadable count.

    A resumed run appends the steps it replays after its last checkpoint again; the
    replay is exact, so the later row of a step stands. A line cut off by a crash
    mid-write is counted and skipped.
    """
    by_step: dict[int, dict] = {}
    bad = 0
    for line in Path(path).read_text().splitlines():
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict) and isinstance(row.get("step"), int):
            by_step[row["step"]] = row
        else:
            bad += 1
    return [by_step[step] for step in sorted(by_step)], bad


def _read_json(data: RunData, name: str) -> dict | None:
    """The JSON object at ``root/name``; None (and a note if unreadable) otherwise."""
    try:
        value = json.loads((data.root / name).read_text())
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        data.missing.append(f"{name}: unreadable ({exc})")
        return None
    return value if isinstance(value, dict) else None


def _stages(manifest: dict) -> list[StageTiming]:
    """The manifest's stages in pipeline order (unknown names after them)."""
    recorded = manifest.get("stages") or {}
    names = [s for s in STAGES if s in recorded]
    names += [s for s in recorded if s not in STAGES]
    return [
        StageTiming(
            name,
            recorded[name].get("seconds"),
            recorded[name].get("skipped"),
            recorded[name].get("finished"),
            recorded[name].get("reason"),
        )
        for name in names
        if isinstance(recorded[name], dict)
    ]


def _config_hash(run_dir: Path) -> str | None:
    """run/config.yaml hashed as the pipeline hashes it (for a root it did not make)."""
    path = run_dir / "config.yaml"
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text())
        return config_sha256(load_section(PipelineConfig, raw, str(path)))
    except (yaml.YAMLError, PinsageError) as exc:
        log.warning("cannot hash %s: %s", path, exc)
        return None


def _read_header(data: RunData) -> None:
    manifest = _read_json(data, "manifest.json")
    if manifest is None:
        data.missing.append(
            "manifest.json: absent, so no dataset, code version or stage timings "
            "(`pinsage pipeline` writes it)"
        )
        manifest = {}
    data.dataset = manifest.get("dataset")
    data.code_version = manifest.get("code_version")
    data.config_sha256 = manifest.get("config_sha256") or _config_hash(
        data.root / "run"
    )
    data.stages = _stages(manifest)
    absent = [s for s in STAGES if s not in {t.name for t in data.stages}]
    if manifest and absent:
        data.missing.append(f"manifest.json: no record of stage(s) {', '.join(absent)}")


def _read_training(data: RunData) -> None:
    run_dir = data.root / "run"
    metrics = run_dir / "metrics.jsonl"
    if metrics.is_file():
        data.train_rows, bad = read_metrics(metrics)
        if bad:
            data.missing.append(f"run/metrics.jsonl: {bad} unreadable line(s) skipped")
    else:
        data.missing.append("run/metrics.jsonl: absent, so no training curves")
    final = _read_json(data, "run/eval.json")
    if final is not None:
        data.baselines = final.pop("baselines", {})
        data.final_metrics, data.final_source = final, "run/eval.json"
        return
    evals = [r for r in data.train_rows if any(EVAL_KEY.match(k) for k in r)]
    if evals:
        last = evals[-1]
        data.final_metrics = {k: v for k, v in last.items() if k not in _TRAIN_KEYS}
        data.final_source = (
            f"the last evaluation row of run/metrics.jsonl (step {last['step']})"
        )
    else:
        data.missing.append(
            "run/eval.json: absent and metrics.jsonl holds no evaluation rows, so no "
            "final metrics (`pinsage eval` writes them)"
        )


def _open_graph(data: RunData) -> Graph | None:
    folder = data.root / "graph"
    if not folder.is_dir():
        data.missing.append("graph/: absent")
        return None
    try:
        graph = load_graph(folder)
    except (PinsageError, OSError, KeyError) as exc:
        data.missing.append(f"graph/: not loadable ({exc})")
        return None
    data.graph = graph.manifest
    return graph


def _read_lookups(data: RunData, graph: Graph | None) -> None:
    try:
        data.embeddings = EmbeddingsManifest.read(data.root / "embeddings")
        if data.embeddings is None:
            data.missing.append("embeddings/: absent or incomplete")
    except DataError as exc:
        data.missing.append(f"embeddings/: not readable ({exc})")
    folder = data.root / "index"
    if complete_manifest(folder) is None:
        data.missing.append(
            "index/: absent or incomplete, so no nearest-neighbour lookups"
        )
        return
    try:
        index = Index.load(folder)
        data.index = index.manifest
        data.samples = sample_lookups(data.root, index, graph)
    except (PinsageError, OSError, RuntimeError) as exc:  # faiss raises RuntimeError
        data.missing.append(f"index/: not usable ({exc})")


def collect_run(root: Path) -> RunData:
    """Read the run root ``root`` (see the module docstring).

    Raises `DataError` when ``root`` is not a folder or holds no part of a run.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(
            f"run root {root} does not exist or is not a folder; pass the --root "
            "that `pinsage pipeline` wrote."
        )
    if not any((root / part).exists() for part in _PARTS):
        raise DataError(
            f"{root} holds none of {', '.join(_PARTS)}: it is not a run root; pass "
            "the --root that `pinsage pipeline` wrote."
        )
    data = RunData(root, generated=datetime.now(UTC).isoformat(timespec="seconds"))
    _read_header(data)
    _read_training(data)
    graph = _open_graph(data)
    _read_lookups(data, graph)
    return data
