"""`pinsage demo`: the pipeline on the embedded default, end to end.

The output is for a person to read. Stages so far: synthetic data -> graph build ->
importance neighbourhoods of a few sample items, printed with their planted cluster
and features so that one can judge whether the neighbourhoods make sense. Every stage
skips work already done.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from pinsage.config import PipelineConfig
from pinsage.data.synth import synthesize
from pinsage.graph import build_graph, load_graph
from pinsage.sampler.describe import describe_neighborhoods

__all__ = ["run_demo"]

log = logging.getLogger(__name__)

NUM_SAMPLE_ITEMS = 3
NEIGHBORS_SHOWN = 5


def _sample_items(graph_degrees: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Items of typical popularity (degree above the median) read better than the head.
    candidates = np.flatnonzero(graph_degrees > np.median(graph_degrees))
    return rng.choice(candidates, size=NUM_SAMPLE_ITEMS, replace=False)


def run_demo(out: Path, *, echo: Callable[[str], None] = print) -> dict:
    """Run the demo pipeline under ``out`` and print what it found.

    Returns the lookup.
    """
    cfg = PipelineConfig()
    out = Path(out)
    t0 = time.perf_counter()
    data_dir = synthesize(cfg.synth, out / "data")
    build_graph(
        data_dir / "interactions.parquet",
        out / "graph",
        items=data_dir / "items.parquet",
    )
    graph = load_graph(out / "graph")
    m = graph.manifest
    echo(
        f"graph: {m['num_items']:,} items, {m['num_contexts']:,} users, "
        f"{m['num_edges']:,} edges"
    )

    rng = np.random.default_rng(cfg.sampler.seed)
    degrees = graph.csr.item_degrees().numpy()
    items = graph.item_ids.take(_sample_items(degrees, rng)).to_pylist()
    doc = describe_neighborhoods(graph, items, [], cfg.sampler)

    meta = pq.read_table(
        data_dir / "items.parquet", columns=["item", "category", "title"]
    )
    meta = meta.join(pq.read_table(data_dir / "item_clusters.parquet"), "item")
    info = {row["item"]: row for row in meta.to_pylist()}

    def describe(item) -> str:
        row = info[item]
        return f"cluster {row['cluster']:>2}  {row['category']:<6} '{row['title']}'"

    same = total = 0
    for entry in doc["seeds"]:
        seed = entry["item"]
        echo(f"\nitem {seed}  ({describe(seed)})")
        echo(
            f"  top {NEIGHBORS_SHOWN} of {len(entry['neighbors'])} neighbours "
            "by visits:"
        )
        for n in entry["neighbors"][:NEIGHBORS_SHOWN]:
            echo(
                f"    {n['item']!s:>7}  visits {n['visits']:>4}  "
                f"alpha {n['weight']:.3f}  "
                f"{describe(n['item'])}"
            )
        same += sum(
            info[n["item"]]["cluster"] == info[seed]["cluster"]
            for n in entry["neighbors"]
        )
        total += len(entry["neighbors"])
    echo(f"\n{same}/{total} sampled neighbours share their seed's planted cluster")
    log.info("demo finished in %.1fs (outputs in %s)", time.perf_counter() - t0, out)
    return doc
