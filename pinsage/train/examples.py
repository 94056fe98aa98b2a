"""Training examples: positive pairs from the training interactions (DESIGN.md).

An interaction (u, q) is drawn uniformly; q's positive is another item i that the same
context u engaged with (one traversal q -> u -> i), drawn uniformly from u's items other
than q. A context with a single item has no item-to-item positive: its pair is marked
invalid for the item objective but still serves the context objective (u, q).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pinsage.graph.store import CSRGraph

__all__ = ["PositivePairs", "sample_positive_pairs"]


class PositivePairs(NamedTuple):
    """A minibatch of engagements and co-engagements.

    Shapes: contexts (B,) int64 context of the engagement; queries (B,) int64 item it
    engaged; positives (B,) int64 another item of the same context (== query when none
    exists); item_pair (B,) bool, True where ``positives`` differs from ``queries``.
    """

    contexts: Tensor
    queries: Tensor
    positives: Tensor
    item_pair: Tensor


def sample_positive_pairs(
    graph: CSRGraph, batch_size: int, *, generator: torch.Generator
) -> PositivePairs:
    """Draw ``batch_size`` interactions uniformly and a co-engaged item for each."""
    device = graph.device
    edges = torch.randint(
        graph.num_edges, (batch_size,), device=device, generator=generator
    )
    indptr = graph.context_indptr
    contexts = torch.searchsorted(indptr, edges, right=True) - 1
    queries = graph.context_indices.index_select(0, edges).long()
    start = indptr.index_select(0, contexts)
    degree = graph.context_degree.index_select(0, contexts).long()
    # Uniform over the context's other items: draw among deg - 1 slots and skip q's.
    u = torch.rand(batch_size, device=device, generator=generator)
    slot = (u * (degree - 1).clamp_min(1)).long()
    slot = slot + (slot >= edges - start).long()
    item_pair = degree > 1
    offsets = torch.where(item_pair, start + slot, edges)
    positives = graph.context_indices.index_select(0, offsets).long()
    return PositivePairs(contexts, queries, positives, item_pair)
