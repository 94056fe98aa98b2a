"""K-layer computation graphs (blocks) for a minibatch of seeds (DESIGN.md).

Layer K's destinations are the seeds; each layer's sources are its destinations
followed by their neighbourhoods' items (destinations first, deduplicated, in order of
first appearance); layer k-1's destinations are layer k's sources. The outermost
sources are the items whose input features the model needs.

The `Block` and `ComputationGraph` records are the network's input
(`pinsage.nn.blocks`); this module builds them. Neighbourhoods come from a function
``dst -> Neighbors``: random walks at training time (`item_blocks`), a fixed
precomputed table at inference time, the same block builder.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from pinsage.config import SamplerConfig
from pinsage.graph.store import CSRGraph
from pinsage.nn.blocks import Block, ComputationGraph
from pinsage.sampler.walks import Neighbors, context_neighbors, item_neighbors

__all__ = [
    "Block",
    "ComputationGraph",
    "build_blocks",
    "context_blocks",
    "item_blocks",
    "table_lookup",
]

NeighborFn = Callable[[Tensor], Neighbors]


def _relabel(prefix: Tensor, others: Tensor) -> tuple[Tensor, Tensor]:
    """Deduplicate ``cat(prefix, others)`` keeping first appearances in order.

    Shapes: prefix (P,) distinct ids, others (M,) -> (nodes (N,) with
    nodes[:P] == prefix, local (M,) positions of ``others`` in ``nodes``).
    """
    both = torch.cat([prefix, others])
    uniq, inverse = torch.unique(both, return_inverse=True)
    position = torch.arange(both.numel(), device=both.device)
    first = torch.full(
        (uniq.numel(),), both.numel(), dtype=torch.long, device=both.device
    )
    first.scatter_reduce_(0, inverse, position, reduce="amin")
    order = torch.argsort(first)  # unique ids in order of first appearance
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel(), device=both.device)
    local = rank.index_select(0, inverse[prefix.numel() :])
    return uniq.index_select(0, order), local


def _block(dst: Tensor, nbrs: Neighbors, dst_is_context: bool) -> Block:
    filled = torch.nonzero(nbrs.ids.flatten() >= 0).squeeze(1)  # (E,) flat slots
    dst_local = filled // nbrs.ids.shape[1]  # row of each filled slot
    prefix = dst[:0] if dst_is_context else dst  # context dsts are not item sources
    src_nodes, src_local = _relabel(prefix, nbrs.ids.flatten().index_select(0, filled))
    edge_index = torch.stack([src_local, dst_local])  # (2, E)
    edge_weight = nbrs.weights.flatten().index_select(0, filled)
    return Block(src_nodes, dst, edge_index, edge_weight, dst_is_context)


def build_blocks(
    seeds: Tensor,
    num_layers: int,
    item_fn: NeighborFn,
    *,
    context_fn: NeighborFn | None = None,
) -> ComputationGraph:
    """Blocks for ``seeds`` with neighbourhoods from ``item_fn`` (and ``context_fn``).

    With ``context_fn`` the seeds are contexts: the last block's destinations are the
    contexts, its sources their neighbourhood items; the layers below are item layers.
    Seeds must be distinct. Shapes: seeds (B,) int64 -> K blocks.
    """
    if torch.unique(seeds).numel() != seeds.numel():
        raise ValueError(
            "build_blocks: seeds must be distinct (deduplicate them first)"
        )
    blocks = []
    dst = seeds.long()
    for layer in range(num_layers):
        top_is_context = context_fn is not None and layer == 0
        nbrs = context_fn(dst) if top_is_context else item_fn(dst)
        blocks.append(_block(dst, nbrs, top_is_context))
        dst = blocks[-1].src_nodes
    return ComputationGraph(blocks[::-1])


def table_lookup(table: Neighbors) -> NeighborFn:
    """Neighbourhoods read from a precomputed table whose row r is node r's."""

    def lookup(dst: Tensor) -> Neighbors:
        return Neighbors(*(part.index_select(0, dst) for part in table))

    return lookup


def item_blocks(
    graph: CSRGraph, seeds: Tensor, cfg: SamplerConfig, *, generator: torch.Generator
) -> ComputationGraph:
    """Blocks for seed items with random-walk neighbourhoods (``cfg.num_layers``)."""

    def sample(dst: Tensor) -> Neighbors:
        return item_neighbors(graph, dst, cfg, generator=generator)

    return build_blocks(seeds.to(graph.device), cfg.num_layers, sample)


def context_blocks(
    graph: CSRGraph,
    contexts: Tensor,
    cfg: SamplerConfig,
    *,
    generator: torch.Generator,
    hide: Callable[[Tensor, Neighbors], Neighbors] | None = None,
) -> ComputationGraph:
    """Blocks whose seeds are contexts (users): top layer context <- items.

    ``hide(dst, nbrs)`` edits the contexts' neighbourhoods (training hides each
    context's positive items, `drop_pairs`).
    """

    def sample_items(dst: Tensor) -> Neighbors:
        return item_neighbors(graph, dst, cfg, generator=generator)

    def sample_contexts(dst: Tensor) -> Neighbors:
        nbrs = context_neighbors(graph, dst, cfg, generator=generator)
        return nbrs if hide is None else hide(dst, nbrs)

    return build_blocks(
        contexts.to(graph.device),
        cfg.num_layers,
        sample_items,
        context_fn=sample_contexts,
    )
