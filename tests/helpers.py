"""Shared test helpers: independent graph construction, exact walk expectations,
a tiny training config, a free loopback port."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from pinsage.cli import main
from pinsage.config import (
    ExecutionConfig,
    ModelConfig,
    PipelineConfig,
    SamplerConfig,
    TrainConfig,
)
from pinsage.data.synth import SynthConfig
from pinsage.graph import build_graph, load_graph
from pinsage.graph.store import CSRGraph, Graph
from pinsage.infer.output import read_embeddings

# 300 items in 5 clusters with every feature kind: the graph of tests/conftest.py.
TINY_SYNTH = SynthConfig(num_items=300, num_users=150, num_edges=4000, num_clusters=5)

# The tiny pipeline config the pipeline, atomic-write and checkpoint tests share.
TINY = """
synth: {num_items: 300, num_users: 200, num_edges: 5000, num_clusters: 5}
sampler: {num_walks: 30}
model: {dim: 16, hidden_dim: 16, out_dim: 16, text_buckets: 1024}
train: {epochs: 2, steps_per_epoch: 12, batch_size: 64, checkpoint_every: 4,
        num_random_negatives: 50}
embed: {engine: local}
execution: {producers: 0}
"""

# How the tiny configs run: on the CPU, batches built in the training loop.
TINY_EXECUTION = ExecutionConfig(device="cpu", producers=0)


def tiny_config(**train) -> PipelineConfig:
    """A config that trains in seconds on `tests/train`'s graph (2 x 4 steps).

    On the CPU, with batches built in the training loop (`PipelineConfig.executed`
    changes that).
    """
    base = dict(
        epochs=2,
        steps_per_epoch=4,
        batch_size=32,
        num_random_negatives=40,
        max_hard_negatives=2,
        checkpoint_every=0,
        warmup_steps=2,
    )
    return PipelineConfig(
        sampler=SamplerConfig(num_walks=10, top_k=5, num_layers=2),
        model=ModelConfig(dim=16, hidden_dim=16, out_dim=16, text_buckets=512),
        train=TrainConfig(**(base | train)),
        execution=TINY_EXECUTION,
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def csr_from_edges(
    num_items: int, num_contexts: int, items, contexts, weights=None
) -> CSRGraph:
    """Build a CSRGraph from an edge list with plain numpy.

    Independent of the graph builder.
    """
    items, contexts = np.asarray(items), np.asarray(contexts)
    weights = (
        np.ones(len(items), np.float32)
        if weights is None
        else np.asarray(weights, np.float32)
    )

    def side(major, minor, n):
        order = np.lexsort((minor, major))
        indptr = np.zeros(n + 1, np.int64)
        np.add.at(indptr, major + 1, 1)
        return (
            torch.from_numpy(np.cumsum(indptr)),
            torch.from_numpy(minor[order].astype(np.int32)),
            torch.from_numpy(weights[order]),
        )

    ii, ix, iw = side(items, contexts, num_items)
    ci, cx, cw = side(contexts, items, num_contexts)
    return CSRGraph.from_arrays(
        weighted=bool((weights != weights[0]).any()),
        item_indptr=ii,
        item_indices=ix,
        item_weights=iw,
        context_indptr=ci,
        context_indices=cx,
        context_weights=cw,
    )


def transition_matrices(num_items, num_contexts, items, contexts, weights=None):
    """Dense (item -> context) and (context -> item) transition matrices."""
    w = np.ones(len(items)) if weights is None else np.asarray(weights, np.float64)
    a = np.zeros((num_items, num_contexts))
    np.add.at(a, (np.asarray(items), np.asarray(contexts)), w)
    with np.errstate(invalid="ignore", divide="ignore"):
        p_ic = np.nan_to_num(a / a.sum(1, keepdims=True))
        p_ci = np.nan_to_num(a.T / a.T.sum(1, keepdims=True))
    return p_ic, p_ci


def expected_visits(
    start: np.ndarray, step: np.ndarray, length: int, restart: float
) -> np.ndarray:
    """Expected visits per walk to each item: sum_t (1-r)^(t-1) (start step^(t-1))."""
    total = np.zeros(step.shape[0])
    dist = start
    for t in range(length):
        total += (1 - restart) ** t * dist
        dist = dist @ step
    return total


def assert_shape(t: torch.Tensor, shape: tuple) -> None:
    assert tuple(t.shape) == tuple(shape), f"shape {tuple(t.shape)} != {shape}"


def assert_one_error_line(err: str, *fragments: str) -> None:
    """stderr is one `error: ...` line, no traceback, holding every fragment."""
    message = err.strip()
    assert "Traceback" not in err
    assert message.startswith("error: ") and message.count("\n") == 0, err
    for fragment in fragments:
        assert fragment in message, message


def run_cli(args, monkeypatch, capsys):
    """Run `pinsage ARGS` in-process through main().

    Returns (exit code, stdout, stderr).
    """
    monkeypatch.setattr(sys, "argv", ["pinsage", *args])
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return code, out.out, out.err


# A 10-item graph with one column of every feature kind (projector, model, cold start).
COLD = 9  # item id 9 has no interactions

ITEMS = {
    "item": list(range(10)),
    "emb": [[float(i), -float(i), 0.5] for i in range(10)],
    "genre": [["rock", "pop"], ["jazz"], [], ["pop"], ["rock"]] * 2,
    "title": [
        "Red Guitar, blue NOTES!",
        "jazz night",
        None,
        "Pop pop POP",
        "a b c d e f",
        "",
        "Über café",
        "red",
        "blue notes",
        "cold start item only text",
    ],
    "price": [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0],
}
KINDS = {"emb": "vector", "genre": "categorical", "title": "text", "price": "dense"}


def write_tiny_graph(root) -> Graph:
    """A 10-item, 5-user graph with every feature kind; item 9 is cold (no edges)."""
    users = [0, 0, 1, 1, 1, 2, 2, 3, 3, 4, 4, 4, 0, 2]
    items = [0, 1, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 8, 0]
    pq.write_table(
        pa.table({"user": pa.array(users, pa.int64()), "item": items}),
        root / "interactions.parquet",
    )
    pq.write_table(pa.table(ITEMS), root / "items.parquet")
    build_graph(
        root / "interactions.parquet",
        root / "graph",
        items=root / "items.parquet",
        feature_kinds=KINDS,
    )
    return load_graph(root / "graph")


def to_csr(rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of item lists as a (indptr, indices) CSR pair."""
    lengths = [len(r) for r in rows]
    indptr = torch.tensor([0, *np.cumsum(lengths)], dtype=torch.int64)
    indices = torch.tensor([i for r in rows for i in r], dtype=torch.int64)
    return indptr, indices


def run_config(aggregator: str = "importance") -> PipelineConfig:
    """2 layers; the hidden width differs from dim to catch mixed-up shapes.

    The importance model has the residual (the default), so its output is dim
    wide; the attention model has none, and an output width of its own.
    """
    residual = aggregator != "attention"
    return PipelineConfig(
        # Inference neighbourhoods differ from training's: every engine must use them.
        sampler=SamplerConfig(
            num_walks=10, top_k=5, num_layers=2, infer_num_walks=20, infer_top_k=8
        ),
        model=ModelConfig(
            dim=16,
            hidden_dim=12,
            out_dim=16 if residual else 8,
            aggregator=aggregator,
            residual=residual,
            text_buckets=512,
        ),
        train=TrainConfig(
            epochs=1,
            steps_per_epoch=2,
            batch_size=32,
            num_random_negatives=40,
            max_hard_negatives=2,
            checkpoint_every=0,
            warmup_steps=1,
        ),
        execution=TINY_EXECUTION,
    )


def assert_same_embeddings(got: Path, want: Path, atol: float) -> None:
    """Two embeddings folders hold the same ids and vectors, items and contexts.

    Rows are compared by id: engines write their parts in different orders.
    """
    for contexts in (False, True):
        got_ids, got_z = read_embeddings(got, contexts=contexts)
        want_ids, want_z = read_embeddings(want, contexts=contexts)
        got_order, want_order = np.argsort(got_ids), np.argsort(want_ids)
        assert got_ids[got_order].tolist() == want_ids[want_order].tolist()
        np.testing.assert_allclose(
            got_z[got_order], want_z[want_order], rtol=0, atol=atol
        )
