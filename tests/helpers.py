"""Shared test helpers: independent graph construction, exact walk expectations,
a tiny training config, a free loopback port."""

from __future__ import annotations

import socket

import numpy as np
import torch

from pinsage.config import ModelConfig, PipelineConfig, SamplerConfig, TrainConfig
from pinsage.graph.store import CSRGraph


def tiny_config(**train) -> PipelineConfig:
    """A config that trains in seconds on `tests/train`'s graph (2 x 4 steps)."""
    base = dict(
        epochs=2,
        steps_per_epoch=4,
        batch_size=32,
        num_random_negatives=40,
        max_hard_negatives=2,
        num_workers=0,
        checkpoint_every=0,
        warmup_steps=2,
    )
    return PipelineConfig(
        sampler=SamplerConfig(num_walks=10, top_k=5, num_layers=2),
        model=ModelConfig(dim=16, hidden_dim=16, out_dim=16, text_buckets=512),
        train=TrainConfig(**(base | train)),
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
