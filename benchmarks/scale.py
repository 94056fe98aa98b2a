"""Every stage at catalogue scale: generate, graph build, table, embed, index.

A synthetic catalogue of ``--items`` items (default 10M), ``--users`` users (default
items / 2) and ``--interactions`` interactions (default 20 an item: 200M), with Zipf
item popularity (exponent `ITEM_ZIPF`, data synth's) and skewed user activity
(`USER_ZIPF`), is written in the data contract (`interactions.parquet`: user, item;
`items.parquet`: item, a `FEATURE_DIM` float vector, a categorical of
`NUM_CATEGORIES` values) in chunks of `CHUNK_ROWS` rows, each chunk from its own
generator seeded by (seed, chunk): the same seed gives the same files, and 200M
interactions never need more than one chunk in memory. Then, each stage in a fresh
subprocess (this script with ``--one STAGE``):

- graph: `pinsage.graph.build_graph` with the catalogue (`pinsage graph build`);
- run: a 1-step run of `config()` (`pinsage.train.train`, as benchmarks/embed.py
  gets its run; the weights barely matter to throughput);
- table: the item neighbourhood table `embed` samples (`neighborhood_table` with
  the run's inference sampler), alone;
- embed: `pinsage.infer.embed` with the local engine (its own table included), and
  with ``--ray`` the Ray engine too;
- index: `pinsage.index.build_index` of kind ivfpq, whose recall@10 is measured
  against exact search over 1,000 catalogue items.

One JSON line a stage: wall seconds of the stage call (imports excluded), items/s or
interactions/s, the peak RSS of the stage's process above its RSS after the imports
(its high-water mark, exact) and the peak PSS of its whole process tree (sampled every
`SAMPLE_INTERVAL` s; Ray's workers and object store included), and ``disk_bytes``:
the size of the folder the stage left (the table stage writes none). With
``--compare ITEMS`` a second catalogue with the same ratios runs in the same
invocation, stage by stage alternating with the first, and a last line gives each
stage's seconds and peak memory per unit at ``--items`` over those at ``ITEMS`` (1.0:
linear). Files go to ``--out`` (default .bench/), one folder per catalogue; the
machine comes first.

    python benchmarks/scale.py [--items 10000000] [--users N] [--interactions N]
        [--compare 1000000] [--ray] [--ray-options '{"concurrency": 2}']
        [--seed 0] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    emit,
    machine,
    peak_rss_kib,
    reset_peak_rss,
    run_json_child,
)

from pinsage.atomic import atomic_dir, publish  # noqa: E402
from pinsage.config import (  # noqa: E402
    ExecutionConfig,
    ModelConfig,
    PipelineConfig,
    SamplerConfig,
    SynthConfig,
)
from pinsage.data.folder import ROW_GROUP_ROWS  # noqa: E402
from pinsage.graph import build_graph, load_graph  # noqa: E402
from pinsage.index import build_index  # noqa: E402
from pinsage.infer import RayOptions, embed  # noqa: E402
from pinsage.manifests import DataManifest  # noqa: E402
from pinsage.sampler import neighborhood_table  # noqa: E402
from pinsage.train import train  # noqa: E402

# Interactions (and items) generated per chunk: a few hundred MB of temporaries. Each
# chunk has its own seeded generator, so this is part of the files' definition.
CHUNK_ROWS = 1 << 22
ITEM_ZIPF = SynthConfig.zipf  # popularity rank r weighs r^-ITEM_ZIPF, as data synth
# Activity rank r weighs r^-USER_ZIPF: milder than item popularity, so that the most
# active of 5M users holds about 0.02% of the interactions (the top item of 10M 1.8%).
USER_ZIPF = 0.5
FEATURE_DIM = 8  # the item vector feature: small, so that features stay ~40 B an item
NUM_CATEGORIES = 1000
INDEX_KIND = "ivfpq"  # the kind `index build --kind auto` picks above 2M vectors
SAMPLE_INTERVAL = 0.5  # seconds between PSS samples of a stage's process tree
# Generator streams: one seed, independent draws for each purpose and chunk.
_RANKS, _INTERACTIONS, _ITEMS = 0, 1, 2


@dataclass(frozen=True)
class Scale:
    """One synthetic catalogue: its sizes and seed."""

    items: int
    users: int
    interactions: int
    seed: int

    @property
    def tag(self) -> str:
        """Its folder name under ``--out``."""
        return f"scale-{self.items}x{self.users}x{self.interactions}-s{self.seed}"

    def with_items(self, items: int) -> Scale:
        """``items`` items, with the same users and interactions an item."""
        ratio = items / self.items
        interactions = round(self.interactions * ratio)
        return Scale(items, round(self.users * ratio), interactions, self.seed)


def config() -> PipelineConfig:
    """The pipeline config of every run: the embedded default, but for two changes.

    Features only (no per-item ID embedding): an ID table is 2.6 GB at 10M items and
    width 64 before the optimizer's two copies, and its spectral start is an SVD of
    the whole graph. Inference samples as training does (100 walks, top 20), not the
    default 500 walks and top 200, whose table alone (20 bytes a slot) is 40 GB at
    10M items.
    """
    return PipelineConfig(
        sampler=SamplerConfig(infer_num_walks=None, infer_top_k=None),
        model=ModelConfig(id_embedding=False),
        execution=ExecutionConfig(device="cpu", producers=0),
    )


# ---------------------------------------------------------------- generation


def zipf_ranks(
    rng: np.random.Generator, n: int, exponent: float, count: int
) -> np.ndarray:
    """``count`` ranks in 0..n-1 with P(rank r) about (r + 1)^-exponent.

    The inverse CDF of the continuous power law on [1, n + 1), floored: O(1) a draw,
    where a categorical draw would binary-search an n-long cumulative table.
    Shapes: -> (count,) int64.
    """
    assert exponent != 1.0, "the closed form below divides by 1 - exponent"
    a = 1.0 - exponent
    x = (1.0 + rng.random(count) * ((n + 1.0) ** a - 1.0)) ** (1.0 / a)
    # x < n + 1 in exact arithmetic; rounding can land on it.
    return np.minimum(x.astype(np.int64) - 1, n - 1)


def _rng(scale: Scale, stream: int, index: int = 0) -> np.random.Generator:
    return np.random.default_rng([scale.seed, stream, index])


def _interaction_chunks(scale: Scale) -> Iterator[pa.Table]:
    """The interactions, `CHUNK_ROWS` rows a table; ids are the indices.

    Rows 0..users-1 give each user one interaction, so that the graph holds every
    user; the others draw the user by activity and every item by popularity, ranks
    mapped to ids by seeded permutations (popularity unrelated to id).
    """
    item_of_rank = _rng(scale, _RANKS, 0).permutation(scale.items)
    user_of_rank = _rng(scale, _RANKS, 1).permutation(scale.users)
    for chunk, lo in enumerate(range(0, scale.interactions, CHUNK_ROWS)):
        rng = _rng(scale, _INTERACTIONS, chunk)
        rows = np.arange(lo, min(lo + CHUNK_ROWS, scale.interactions))
        drawn = user_of_rank[zipf_ranks(rng, scale.users, USER_ZIPF, len(rows))]
        users = np.where(rows < scale.users, rows, drawn)
        items = item_of_rank[zipf_ranks(rng, scale.items, ITEM_ZIPF, len(rows))]
        yield pa.table({"user": users, "item": items})


def _item_chunks(scale: Scale) -> Iterator[pa.Table]:
    """The catalogue, `CHUNK_ROWS` items a table: a random vector and category."""
    for chunk, lo in enumerate(range(0, scale.items, CHUNK_ROWS)):
        rng = _rng(scale, _ITEMS, chunk)
        n = min(CHUNK_ROWS, scale.items - lo)
        vector = rng.standard_normal((n, FEATURE_DIM), dtype=np.float32)
        yield pa.table(
            {
                "item": np.arange(lo, lo + n),
                "vector": pa.FixedSizeListArray.from_arrays(
                    pa.array(vector.ravel()), FEATURE_DIM
                ),
                "category": rng.integers(NUM_CATEGORIES, size=n, dtype=np.int32),
            }
        )


def _write_chunks(path: Path, chunks: Iterator[pa.Table]) -> int:
    """Stream ``chunks`` into one Parquet file (`ROW_GROUP_ROWS` row groups); rows."""
    rows, writer = 0, None
    for table in chunks:
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
        rows += table.num_rows
    assert writer is not None, "a scale has at least one row of each table"
    writer.close()
    return rows


def generate(scale: Scale, out: Path) -> DataManifest:
    """Write the data folder of ``scale`` to ``out`` (replaced if present)."""
    tables = {"interactions": _interaction_chunks(scale), "items": _item_chunks(scale)}
    with atomic_dir(out, overwrite=True) as tmp:
        rows = {k: _write_chunks(tmp / f"{k}.parquet", v) for k, v in tables.items()}
        manifest = DataManifest(
            params={"source": "benchmarks/scale.py", **asdict(scale)},
            tables={k: {"rows": n} for k, n in rows.items()},
        )
        publish(tmp, manifest.to_json())
    return manifest


# ---------------------------------------------------------------- stages (child side)


class Job(NamedTuple):
    """What a stage works on: the catalogue, its folder, the Ray engine's options."""

    scale: Scale
    root: Path  # the catalogue's folder: data/, graph/, run/, embeddings-*/, index/
    ray_options: dict  # RayOptions fields


def _generate(job: Job) -> dict:
    generate(job.scale, job.root / "data")
    return {}


def _graph(job: Job) -> dict:
    data = job.root / "data"
    m = build_graph(
        data / "interactions.parquet",
        job.root / "graph",
        items=data / "items.parquet",
        overwrite=True,
    )
    keys = ("num_items", "num_contexts", "num_edges", "interactions_read")
    keys += ("duplicates_merged", "dropped_unknown_items", "isolated_items")
    return {k: getattr(m, k) for k in keys} | {"sort_seconds": m.sort_seconds}


def _run(job: Job) -> dict:
    shutil.rmtree(job.root / "run", ignore_errors=True)
    train(config(), job.root / "graph", job.root / "run", until_step=1)
    return {}


def _table(job: Job) -> dict:
    sampler = config().sampler.for_inference()
    table = neighborhood_table(load_graph(job.root / "graph").csr, sampler)
    return {
        "num_walks": sampler.num_walks,
        "top_k": sampler.top_k,
        "filled_slots": int((table.ids >= 0).sum()),
    }


def _embed(engine: str) -> Callable[[Job], dict]:
    def stage(job: Job) -> dict:
        manifest = embed(
            job.root / "run",
            job.root / "graph",
            job.root / f"embeddings-{engine}",
            engine=engine,
            overwrite=True,
            options=RayOptions(**job.ray_options),
        )
        return {
            "count": manifest.count,
            "dim": manifest.dim,
            "phases": manifest.seconds,
        }

    return stage


def _index(job: Job) -> dict:
    m = build_index(
        job.root / "embeddings-local",
        job.root / "index",
        kind=INDEX_KIND,
        overwrite=True,
    )
    return {
        "factory": m.factory,
        "search_params": m.search_params,
        "recall@10": m.recall_at_10,
        "recall_queries": m.recall_queries,
        "build_seconds": m.build_seconds,
    }


class Stage(NamedTuple):
    """One timed stage: what it runs, what its rate counts, the folder it writes."""

    run: Callable[[Job], dict]
    unit: str  # "items" or "interactions"
    output: str | None  # under the catalogue's folder; None: writes nothing


STAGES = {
    "generate": Stage(_generate, "interactions", "data"),
    "graph": Stage(_graph, "interactions", "graph"),
    "run": Stage(_run, "items", "run"),
    "table": Stage(_table, "items", None),
    "embed": Stage(_embed("local"), "items", "embeddings-local"),
    "embed-ray": Stage(_embed("ray"), "items", "embeddings-ray"),
    "index": Stage(_index, "items", "index"),
}


def _child(stage: str, job: Job) -> None:
    """Run one stage; print its seconds, memory and figures as one JSON line."""
    baseline = reset_peak_rss()
    t0 = time.perf_counter()
    figures = STAGES[stage].run(job)
    seconds = time.perf_counter() - t0
    result = {"seconds": seconds, "peak_kib": peak_rss_kib()}
    result |= {"baseline_kib": baseline, "figures": figures}
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- parent side


def _folder_bytes(folder: Path) -> int:
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _scale_args(scale: Scale) -> list[str]:
    return [
        *("--items", str(scale.items), "--users", str(scale.users)),
        *("--interactions", str(scale.interactions), "--seed", str(scale.seed)),
    ]


def measure(stage: str, scale: Scale, out: Path, ray_options: dict) -> dict:
    """Run ``stage`` of ``scale`` in a fresh subprocess; its record (one JSON line)."""
    cmd = [sys.executable, __file__, "--one", stage, "--out", str(out)]
    cmd += [*_scale_args(scale), "--ray-options", json.dumps(ray_options)]
    child, pss_kib, seen = run_json_child(cmd, SAMPLE_INTERVAL)
    spec, seconds = STAGES[stage], child["seconds"]
    units = scale.items if spec.unit == "items" else scale.interactions
    folder = out / scale.tag / spec.output if spec.output else None
    return {
        "bench": "scale",
        "stage": stage,
        **{k: v for k, v in asdict(scale).items() if k != "seed"},
        "wall_seconds": round(seconds, 3),
        f"{spec.unit}_per_s": round(units / seconds, 1),
        # Above the process's RSS after its imports (baseline_rss_mib).
        "peak_rss_mib": round((child["peak_kib"] - child["baseline_kib"]) / 1024, 1),
        "baseline_rss_mib": round(child["baseline_kib"] / 1024, 1),
        "peak_pss_mib": round(pss_kib / 1024, 1),
        "processes_seen": 1 + len(seen),
        "disk_bytes": _folder_bytes(folder) if folder else 0,
        **child["figures"],
    }


def per_unit_ratios(big: dict[str, dict], small: dict[str, dict]) -> dict:
    """Each stage's seconds and peak RSS per unit at ``big`` over those at ``small``.

    Both catalogues have the same ratios, so every unit grows by the items' ratio.
    """
    growth = big["generate"]["items"] / small["generate"]["items"]
    return {
        "seconds_per_unit": {
            s: round(big[s]["wall_seconds"] / small[s]["wall_seconds"] / growth, 3)
            for s in big
        },
        "peak_rss_per_unit": {
            s: round(big[s]["peak_rss_mib"] / small[s]["peak_rss_mib"] / growth, 3)
            for s in big
            if small[s]["peak_rss_mib"] > 0
        },
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000_000)
    parser.add_argument("--users", type=int, help="default: items / 2")
    parser.add_argument("--interactions", type=int, help="default: 20 x items")
    parser.add_argument(
        "--compare", type=int, metavar="ITEMS", help="also this many items, same ratios"
    )
    parser.add_argument("--ray", action="store_true", help="also the Ray engine")
    parser.add_argument(
        "--ray-options",
        default="{}",
        help="RayOptions fields as JSON, e.g. '{\"concurrency\": 2}'",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=CACHE, help="default: .bench/")
    parser.add_argument("--one", choices=[*STAGES], help=argparse.SUPPRESS)
    return parser


def main() -> None:
    parser = _parser()
    args = parser.parse_args()
    users = args.users or max(1, args.items // 2)
    interactions = args.interactions or 20 * args.items
    scale = Scale(args.items, users, interactions, args.seed)
    ray_options = json.loads(args.ray_options)
    if args.one:
        _child(args.one, Job(scale, args.out / scale.tag, ray_options))
        return
    if min(scale.items, scale.users) < 1 or scale.interactions < scale.users:
        parser.error("needs items, users >= 1 and interactions >= users")
    scales = [scale.with_items(args.compare), scale] if args.compare else [scale]
    stages = [s for s in STAGES if args.ray or s != "embed-ray"]
    cfg = config()
    emit(
        {
            "bench": "scale",
            "machine": machine(),
            "scales": [asdict(s) for s in scales],
            "sampler": asdict(cfg.sampler),
            "model": asdict(cfg.model),
            "index_kind": INDEX_KIND,
            "pss_sample_seconds": SAMPLE_INTERVAL,
        }
    )
    records: list[dict[str, dict]] = [{} for _ in scales]  # stage -> record
    for stage in stages:  # catalogues alternate: machine noise hits both alike
        for s, done in zip(scales, records, strict=True):
            done[stage] = measure(stage, s, args.out, ray_options)
            emit(done[stage])
    if args.compare:
        small, big = records
        emit(
            {
                "bench": "scale",
                "items": scale.items,
                "compare_items": scales[0].items,
                "over_compare": per_unit_ratios(big, small),
            }
        )


if __name__ == "__main__":
    main()
