"""`pinsage demo`: the whole pipeline on the embedded default, for a person to read.

`pinsage pipeline` on the generated default (synthetic data -> graph -> training ->
evaluation -> every item embedded once -> a FAISS index) and its HTML report,
then the importance neighbourhoods of a few sample items and their nearest items
looked up in the index, printed with their planted cluster and features so that one
can judge both: beside the chance of a random item sharing the cluster, and after the
model's recall/NDCG@20 against the training-free baselines on held-out interactions.
Every stage skips work already done, so a second run only prints.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pinsage.config import PipelineConfig
from pinsage.graph import load_graph
from pinsage.index import Index
from pinsage.pipeline import run_pipeline
from pinsage.report import write_report
from pinsage.sampler.describe import describe_neighborhoods

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

NUM_SAMPLE_ITEMS = 3
NEIGHBORS_SHOWN = 5


def _sample_items(graph_degrees: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Items of typical popularity (degree above the median) read better than the head.
    candidates = np.flatnonzero(graph_degrees > np.median(graph_degrees))
    return rng.choice(candidates, size=NUM_SAMPLE_ITEMS, replace=False)


class _Catalogue:
    """Planted cluster (and sub-cluster) and features of every item, for judging."""

    def __init__(self, data_dir: Path) -> None:
        meta = pq.read_table(
            data_dir / "items.parquet", columns=["item", "category", "title"]
        )
        meta = meta.join(pq.read_table(data_dir / "item_clusters.parquet"), "item")
        self.has_sub = "subcluster" in meta.column_names
        self.info = {row["item"]: row for row in meta.to_pylist()}

    def describe(self, item) -> str:
        row = self.info[item]
        sub = f".{row['subcluster']}" if self.has_sub else ""
        group = f"{row['cluster']:>2}{sub}"
        return f"cluster {group}  {row['category']:<6} '{row['title']}'"

    def group(self, item, sub: bool = False) -> tuple:
        """The item's planted cluster, or (cluster, sub-cluster) with ``sub``."""
        row = self.info[item]
        return (row["cluster"], row["subcluster"] if sub else None)

    def chance(self, seeds: list, sub: bool = False) -> float:
        """Share of the other items in a seed's group (a random pick's odds)."""
        sizes: dict = {}
        for item in self.info:
            key = self.group(item, sub)
            sizes[key] = sizes.get(key, 0) + 1
        others = len(self.info) - 1
        return float(np.mean([(sizes[self.group(s, sub)] - 1) / others for s in seeds]))

    def shared(self, pairs: list[tuple], seeds: list) -> str:
        """How many (item, seed) pairs share the planted cluster (and sub-cluster).

        Each beside the chance of a random item doing so.
        """
        parts = []
        for sub, what in ((False, "cluster"), (True, "sub-cluster")):
            if sub and not self.has_sub:
                continue
            hits = sum(self.group(a, sub) == self.group(b, sub) for a, b in pairs)
            odds = 100 * self.chance(seeds, sub)
            parts.append(f"{hits}/{len(pairs)} share the {what} (chance {odds:.0f}%)")
        return "; ".join(parts)


def _print_quality(run_dir: Path, echo) -> None:
    """The model's recall/NDCG@20 on the held-out interactions beside the baselines."""
    result = json.loads((run_dir / "eval.json").read_text())
    rows = [("PinSage (this run)", result)]
    rows += list(result.get("baselines", {}).items())
    echo("\nheld-out interactions of every user (`pinsage eval`):")
    echo(f"    {'model':<20} {'recall@20':>9} {'NDCG@20':>9}")
    for name, scores in rows:
        recall, ndcg = scores["recall@20"], scores["ndcg@20"]
        echo(f"    {name:<20} {recall:>9.4f} {ndcg:>9.4f}")


def _print_neighborhoods(doc: dict, cat: _Catalogue, echo) -> None:
    pairs = []
    for entry in doc["seeds"]:
        seed = entry["item"]
        echo(f"\nitem {seed}  ({cat.describe(seed)})")
        shown = f"top {NEIGHBORS_SHOWN} of {len(entry['neighbors'])}"
        echo(f"  {shown} neighbours by visits:")
        for n in entry["neighbors"][:NEIGHBORS_SHOWN]:
            counts = f"visits {n['visits']:>4}  alpha {n['weight']:.3f}"
            echo(f"    {n['item']!s:>7}  {counts}  {cat.describe(n['item'])}")
        pairs += [(n["item"], seed) for n in entry["neighbors"]]
    seeds = [entry["item"] for entry in doc["seeds"]]
    echo(f"\nsampled neighbours of their seed: {cat.shared(pairs, seeds)}")


def _print_nearest(
    items: list, nearest: list[list], scores: np.ndarray, cat: _Catalogue, echo
) -> None:
    pairs = []
    echo("\nnearest items by the trained embeddings (looked up in the FAISS index):")
    for seed, row, row_scores in zip(items, nearest, scores, strict=True):
        echo(f"\nitem {seed}  ({cat.describe(seed)})")
        for item, score in zip(row, row_scores.tolist(), strict=True):
            pairs.append((item, seed))
            echo(f"    {item!s:>7}  score {score:.3f}  {cat.describe(item)}")
    echo(f"\nnearest items of their seed: {cat.shared(pairs, items)}")


def run_demo(
    out: Path, *, cfg: PipelineConfig | None = None, echo: Callable[[str], None] = print
) -> dict:
    """Run the pipeline under ``out`` and print what it found.

    Returns the sampled neighbourhoods and nearest items of the sample items.
    """
    cfg = cfg or PipelineConfig()
    out = Path(out)
    t0 = time.perf_counter()
    run_pipeline(cfg, out)
    report = write_report(out)
    graph = load_graph(out / "graph")
    m = graph.manifest
    echo(
        f"graph: {m.num_items:,} items, {m.num_contexts:,} users, "
        f"{m.num_edges:,} edges; report (curves, metrics, neighbours): {report}"
    )
    if (out / "run" / "eval.json").exists():
        _print_quality(out / "run", echo)
    cat = _Catalogue(out / "data")
    rng = np.random.default_rng(cfg.sampler.seed)
    sample = _sample_items(graph.csr.item_degrees().numpy(), rng)
    items = graph.item_ids.take(sample).to_pylist()
    doc = describe_neighborhoods(graph, items, [], cfg.sampler)
    _print_neighborhoods(doc, cat, echo)
    ids, scores = Index.load(out / "index").search(items=items, k=NEIGHBORS_SHOWN)
    nearest = ids.tolist()
    _print_nearest(items, nearest, scores, cat, echo)
    log.info("demo finished in %.1fs (outputs in %s)", time.perf_counter() - t0, out)
    return {"neighborhoods": doc, "nearest": nearest}
