"""Random walks with restart and importance neighbourhoods (DESIGN.md).

A walk from item q takes up to ``walk_length`` traversals item -> context -> item and,
after each traversal, ends with probability ``restart``. Every item it stands on after a
traversal counts one visit (q itself excluded). q's neighbourhood is the ``top_k`` items
by visit count, with importance weights alpha = visits / sum of the kept visits.

Everything is vectorised over all walks of a batch: walk lengths are drawn up front
(geometric, capped), walkers are sorted by length so that the walkers still alive at
step t are a prefix, and each step is a handful of gathers. The Python loop runs over
steps (``walk_length`` of them), never over walks or nodes. All tensors stay on the
graph's device, so the same code samples on a GPU.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from pinsage.config import SamplerConfig
from pinsage.graph.store import CSRGraph

__all__ = [
    "Neighbors",
    "context_neighbors",
    "item_neighbors",
    "top_visited",
    "walk_visits",
]

PAD = -1  # id of an empty neighbour slot


class Neighbors(NamedTuple):
    """Importance neighbourhoods of a batch of B destination nodes.

    Shapes: ids (B, T) int64 item indices, PAD (-1) in empty slots, sorted by
    decreasing visits (ties: smaller index first); visits (B, T) int64, 0 in empty
    slots; weights (B, T) float32 alpha, summing to 1 over a row's filled slots (0 for
    an empty row).
    """

    ids: Tensor
    visits: Tensor
    weights: Tensor


def _hop(
    indptr: Tensor, indices: Tensor, cumw: Tensor | None, nodes: Tensor, u: Tensor
) -> Tensor:
    """One step from each of ``nodes`` to a random neighbour (degree >= 1 required).

    Uniform when ``cumw`` is None, else in proportion to the edge weight: the target
    mass ``start_mass + u * node_mass`` is located in the global running sum.
    Shapes: nodes (N,) int64, u (N,) float in [0, 1) -> (N,) int64.
    """
    start = indptr[nodes]
    end = indptr[nodes + 1]
    if cumw is None:
        offset = start + (u * (end - start)).long()
    else:
        base = torch.where(start > 0, cumw[(start - 1).clamp_min(0)], 0.0)
        target = base + u.double() * (cumw[end - 1] - base)
        offset = torch.searchsorted(cumw, target, right=True)
    # Guard against float rounding landing one past the node's last edge.
    offset = torch.minimum(offset, end - 1)
    return indices[offset].long()


def walk_visits(
    graph: CSRGraph,
    starts: Tensor,
    cfg: SamplerConfig,
    *,
    generator: torch.Generator,
    from_context: bool = False,
) -> tuple[Tensor, Tensor]:
    """Run ``cfg.num_walks`` walks from each start node; return every visit.

    From an item, each traversal is item -> context -> item. From a context (user),
    the first traversal is the single hop context -> item, later ones as from an item.
    Start nodes must have at least one edge.

    Shapes: starts (B,) int64 -> (rows (V,) int64 in [0, B), items (V,) int64): visit
    v is by a walk from ``starts[rows[v]]`` to item ``items[v]``.
    """
    device = graph.device
    num_walkers = starts.numel() * cfg.num_walks
    rows = torch.arange(starts.numel(), device=device).repeat_interleave(cfg.num_walks)
    if cfg.restart > 0:
        lengths = torch.empty(num_walkers, device=device)
        lengths.geometric_(
            cfg.restart, generator=generator
        )  # traversals before the end
        lengths = lengths.clamp_max(cfg.walk_length).long()
        # Longest walks first, so the walkers alive at step t are a prefix.
        lengths, order = torch.sort(lengths, descending=True, stable=True)
        rows = rows[order]
        alive = torch.bincount(lengths, minlength=cfg.walk_length + 1)
        alive = alive.flip(0).cumsum(0).flip(0)[1:].tolist()  # alive[t]: length > t
    else:
        alive = [num_walkers] * cfg.walk_length
    cur = starts[rows]
    visit_rows, visit_items = [], []
    item_side = (graph.item_indptr, graph.item_indices, graph.item_cumw)
    context_side = (graph.context_indptr, graph.context_indices, graph.context_cumw)
    for step, n in enumerate(alive):
        if n == 0:
            break
        cur = cur[:n]
        u = torch.rand(2, n, device=device, generator=generator)  # (2, n)
        if from_context and step == 0:
            cur = _hop(*context_side, cur, u[0])
        else:
            cur = _hop(*context_side, _hop(*item_side, cur, u[0]), u[1])
        visit_rows.append(rows[:n])
        visit_items.append(cur)
    if not visit_rows:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty
    return torch.cat(visit_rows), torch.cat(visit_items)


def top_visited(
    rows: Tensor,
    items: Tensor,
    num_rows: int,
    top_k: int,
    *,
    exclude: Tensor | None = None,
) -> Neighbors:
    """Count visits per (row, item) and keep each row's ``top_k`` most visited items.

    ``exclude`` (num_rows,) drops visits of row r to item ``exclude[r]`` (the seed).
    Shapes: rows (V,), items (V,) int64 -> Neighbors of B = num_rows rows, T = top_k.
    """
    device = items.device
    if exclude is not None:
        keep = items != exclude[rows]
        rows, items = rows[keep], items[keep]
    ids = torch.full((num_rows, top_k), PAD, dtype=torch.long, device=device)
    visits = torch.zeros((num_rows, top_k), dtype=torch.long, device=device)
    if items.numel():
        span = int(items.max()) + 1
        pairs, counts = torch.unique(rows * span + items, return_counts=True)  # sorted
        pair_rows, pair_items = pairs // span, pairs % span
        # Order by (row, visits desc); the stable sort keeps ties in ascending item id.
        ceiling = int(counts.max()) + 1
        order = torch.sort(
            pair_rows * ceiling + (ceiling - 1 - counts), stable=True
        ).indices
        pair_rows, pair_items, counts = (
            pair_rows[order],
            pair_items[order],
            counts[order],
        )
        first = torch.searchsorted(pair_rows, pair_rows)  # start of each row's run
        rank = torch.arange(pair_rows.numel(), device=device) - first
        kept = rank < top_k
        slot = (pair_rows[kept], rank[kept])
        ids[slot] = pair_items[kept]
        visits[slot] = counts[kept]
    total = visits.sum(dim=1, keepdim=True)
    weights = (visits / total.clamp_min(1)).float()
    return Neighbors(ids, visits, weights)


def item_neighbors(
    graph: CSRGraph, seeds: Tensor, cfg: SamplerConfig, *, generator: torch.Generator
) -> Neighbors:
    """Importance neighbourhoods of items (isolated items get an empty row).

    Shapes: seeds (B,) int64 item indices -> Neighbors (B, cfg.top_k).
    """
    seeds = seeds.to(graph.device, torch.long)
    has_edges = graph.item_indptr[seeds + 1] > graph.item_indptr[seeds]
    walkers = torch.nonzero(has_edges).squeeze(1)  # rows of the seeds that can walk
    rows, items = walk_visits(graph, seeds[walkers], cfg, generator=generator)
    return top_visited(walkers[rows], items, seeds.numel(), cfg.top_k, exclude=seeds)


def context_neighbors(
    graph: CSRGraph, contexts: Tensor, cfg: SamplerConfig, *, generator: torch.Generator
) -> Neighbors:
    """Importance neighbourhoods of contexts (users): the items their walks visit.

    Shapes: contexts (B,) int64 context indices -> Neighbors (B, cfg.top_k).
    """
    contexts = contexts.to(graph.device, torch.long)
    rows, items = walk_visits(
        graph, contexts, cfg, generator=generator, from_context=True
    )
    return top_visited(rows, items, contexts.numel(), cfg.top_k)
