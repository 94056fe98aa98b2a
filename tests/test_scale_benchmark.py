"""benchmarks/scale.py: its streamed, seeded data and every stage, end to end, small."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from pinsage.atomic import file_sha256
from pinsage.graph import load_graph
from pinsage.index import Index
from pinsage.index.build import IDS_FILE, VECTORS_FILE, recall_at

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "scale.py"
# Fixed costs set this test's time (about 70 s on 2 busy cores at 10k items): each of
# 7 fresh processes takes 2.5-3.5 s of imports, and FAISS's IVF-PQ training a few
# seconds at any size; every stage past them is about 1 s.
ITEMS = 10_000
STAGES = ("generate", "graph", "run", "table", "embed", "index")
RECALL_BOUND = 0.9  # the build tunes its search for recall@10 >= 0.95


def _module():
    spec = importlib.util.spec_from_file_location("scale_benchmark", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


scale = _module()


def _files(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.glob("*.parquet"))}


def test_generation_is_streamed_seeded_and_exact(tmp_path, monkeypatch):
    # Small chunks: the multi-chunk path that 200M interactions take.
    monkeypatch.setattr(scale, "CHUNK_ROWS", 4096)
    size = scale.Scale(items=3000, users=1500, interactions=30_000, seed=3)
    manifest = scale.generate(size, tmp_path / "a")
    scale.generate(size, tmp_path / "b")
    scale.generate(scale.Scale(3000, 1500, 30_000, seed=4), tmp_path / "c")
    assert _files(tmp_path / "a") == _files(tmp_path / "b")
    assert _files(tmp_path / "a") != _files(tmp_path / "c")
    rows = {"interactions": {"rows": size.interactions}, "items": {"rows": size.items}}
    assert manifest.tables == rows
    inter = pq.read_table(tmp_path / "a" / "interactions.parquet")
    assert pc.count_distinct(inter["user"]).as_py() == size.users
    assert pc.min_max(inter["item"]).as_py() == {"min": 0, "max": size.items - 1}
    items = pq.read_table(tmp_path / "a" / "items.parquet")
    assert items["item"].to_pylist() == list(range(size.items))
    # Zipf popularity: the most popular item is drawn far more often than the median.
    counts = np.bincount(inter["item"].to_numpy(), minlength=size.items)
    assert counts.max() > 20 * np.median(counts)


def test_per_unit_ratios_are_over_the_items_ratio():
    small = {"generate": {"items": 10, "wall_seconds": 2.0, "peak_rss_mib": 5.0}}
    big = {"generate": {"items": 100, "wall_seconds": 40.0, "peak_rss_mib": 50.0}}
    assert scale.per_unit_ratios(big, small) == {
        "seconds_per_unit": {"generate": 2.0},
        "peak_rss_per_unit": {"generate": 1.0},
    }


def _brute_force_recall(index_dir: Path, queries: int) -> float:
    """recall@10 of the built index against an exact numpy scan, catalogue queries."""
    x = np.load(index_dir / VECTORS_FILE)  # L2-normalised rows
    ids = pq.read_table(index_dir / IDS_FILE)["item"].to_numpy()
    rows = np.random.default_rng(0).choice(len(x), queries, replace=False)
    scores = x[rows] @ x.T  # (Q, N)
    scores[np.arange(queries), rows] = -np.inf  # a query is not its own neighbour
    exact = ids[np.argsort(-scores, axis=1)[:, :10]]
    found, _ = Index.load(index_dir).search(items=ids[rows].tolist(), k=10)
    return recall_at(found.astype(np.int64), exact)


@pytest.mark.slow
def test_every_stage_reports_and_the_graph_is_the_requested_one(tmp_path):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--items", str(ITEMS), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert "machine" in lines[0]
    records = {r["stage"]: r for r in lines[1:]}
    assert tuple(records) == STAGES
    for stage, r in records.items():
        rate = r["items_per_s"] if "items_per_s" in r else r["interactions_per_s"]
        assert r["wall_seconds"] > 0 and rate > 0, stage
        assert r["peak_pss_mib"] > 0 and r["peak_rss_mib"] > 0, stage
        assert (r["disk_bytes"] > 0) == (stage != "table"), stage
    graph = records["graph"]
    users, interactions = ITEMS // 2, 20 * ITEMS
    assert (graph["num_items"], graph["num_contexts"]) == (ITEMS, users)
    assert graph["interactions_read"] == interactions
    # Repeated (user, item) pairs merge into one edge; nothing else is dropped.
    assert graph["num_edges"] + graph["duplicates_merged"] == interactions
    assert graph["dropped_unknown_items"] == 0
    root = tmp_path / scale.Scale(ITEMS, users, interactions, 0).tag
    assert load_graph(root / "graph").csr.num_edges == graph["num_edges"]
    assert records["embed"]["count"] == ITEMS
    index = records["index"]
    assert index["factory"].startswith("IVF") and "PQ" in index["factory"]
    assert index["recall@10"] >= RECALL_BOUND
    assert _brute_force_recall(root / "index", queries=200) >= RECALL_BOUND
