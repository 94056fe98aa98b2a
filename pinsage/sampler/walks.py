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

import numpy as np
import torch
from torch import Tensor

from pinsage.config import SamplerConfig
from pinsage.graph.store import CSRGraph

__all__ = [
    "Neighbors",
    "context_neighbors",
    "debiased",
    "drop_pairs",
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


# float32 u < 1 times an integer degree d < 2^24 (exact in float32) rounds to a value
# below d, so floor(u * d) is a valid offset without a clamp; larger degrees need one.
_EXACT_FLOAT_DEGREE = 2**24


def _hop(
    indptr: Tensor,
    degree: Tensor,
    indices: Tensor,
    cumw: Tensor | None,
    nodes: Tensor,
    u: Tensor,
    clamp: bool,
) -> Tensor:
    """One step from each of ``nodes`` to a random neighbour (degree >= 1 required).

    Uniform when ``cumw`` is None, else in proportion to the edge weight: the target
    mass ``start_mass + u * node_mass`` is located in the global running sum.
    Shapes: nodes (N,) int, u (N,) float32 in [0, 1) -> (N,) int32 neighbour ids.
    """
    # index_select: a plain gather, about twice as fast as `tensor[index]` on CPU.
    start = indptr.index_select(0, nodes)
    degree = degree.index_select(0, nodes)
    if cumw is None:
        offset = start + (u * degree).long()
        if not clamp:
            return indices.index_select(0, offset)
    else:
        base = torch.where(
            start > 0, cumw.index_select(0, (start - 1).clamp_min(0)), 0.0
        )
        end = start + degree
        target = base + u.double() * (cumw.index_select(0, end - 1) - base)
        offset = torch.searchsorted(cumw, target, right=True)
    # Float rounding can land one past the node's last edge: clamp to it.
    return indices.index_select(0, torch.minimum(offset, start + degree - 1))


def _survivors(
    num_walkers: int,
    cfg: SamplerConfig,
    generator: torch.Generator,
    device: torch.device,
) -> list[int]:
    """Walkers still walking at each step.

    A binomial chain with survival probability 1 - restart.
    """
    alive = [num_walkers]
    keep = torch.tensor(1.0 - cfg.restart, device=device)
    for _ in range(cfg.walk_length - 1):
        count = torch.tensor(float(alive[-1]), device=device)
        alive.append(int(torch.binomial(count, keep, generator=generator)))
    return alive


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

    Walkers are put in random order once; after each traversal the survivors are a
    prefix of that order whose length is drawn from a binomial. A prefix of a uniformly
    random order is a uniformly random subset, so every walker ends after each
    traversal independently with probability ``restart``, as if drawn one by one.

    Shapes: starts (B,) int64 -> (rows (V,) int64 in [0, B), items (V,) int32): visit
    v is by a walk from ``starts[rows[v]]`` to item ``items[v]``.
    """
    device = graph.device
    num_walkers = starts.numel() * cfg.num_walks
    rows = torch.arange(starts.numel(), device=device).repeat_interleave(cfg.num_walks)
    if cfg.walk_length > 1 and cfg.restart > 0:
        rows = rows[torch.randperm(num_walkers, device=device, generator=generator)]
    alive = _survivors(num_walkers, cfg, generator, device)
    clamp = graph.max_degree >= _EXACT_FLOAT_DEGREE
    item_side = (
        graph.item_indptr,
        graph.item_degree,
        graph.item_indices,
        graph.item_cumw,
    )
    context_side = (
        graph.context_indptr,
        graph.context_degree,
        graph.context_indices,
        graph.context_cumw,
    )
    cur = starts.index_select(0, rows)
    visits = []
    for step, n in enumerate(alive):
        if n == 0:
            break
        u = torch.rand(2, n, device=device, generator=generator)  # (2, n)
        if from_context and step == 0:
            cur = _hop(*context_side, cur, u[0], clamp)
        else:
            cur = _hop(
                *context_side, _hop(*item_side, cur[:n], u[0], clamp), u[1], clamp
            )
        visits.append(cur)
    if not visits:
        empty = torch.empty(0, dtype=torch.long, device=device)
        return empty, empty.int()
    return torch.cat([rows[: v.numel()] for v in visits]), torch.cat(visits)


# Below this many elements torch's CPU sort costs a fixed ~0.7 ms (measured on 2
# cores) where numpy's costs ~0.1 ms; CUDA tensors always use torch.
_NUMPY_SORT_BELOW = 50_000


def _sort_values(x: Tensor) -> Tensor:
    if x.is_cuda or x.numel() >= _NUMPY_SORT_BELOW:
        return torch.sort(x).values
    return torch.from_numpy(np.sort(x.numpy()))


def _stable_argsort(x: Tensor) -> Tensor:
    if x.is_cuda or x.numel() >= _NUMPY_SORT_BELOW:
        return torch.sort(x, stable=True).indices
    return torch.from_numpy(np.argsort(x.numpy(), kind="stable"))


def _sortable_key(rows: Tensor, items: Tensor, span: int, num_rows: int) -> Tensor:
    """Return ``rows * span + items``.

    In int32 when it fits (sorts ~1.7x faster), else int64.
    """
    dtype = torch.int32 if num_rows * span < 2**31 else torch.long
    return rows.to(dtype) * span + items.to(dtype)


def _count_threshold(rows: Tensor, counts: Tensor, num_rows: int, top_k: int) -> Tensor:
    """Per row, the largest c such that at least ``top_k`` pairs have count >= c (>= 1).

    Pairs below their row's threshold cannot enter its top ``top_k``; dropping them
    before the ranking sort shrinks it from all visited pairs to about B * T.
    Shapes: rows (P,), counts (P,) -> (num_rows,) int64.
    """
    ceiling = int(counts.max()) + 1
    hist = torch.bincount(rows.long() * ceiling + counts, minlength=num_rows * ceiling)
    at_least = hist.view(num_rows, ceiling).flip(1).cumsum(1).flip(1)  # (B, C): >= c
    return ((at_least >= top_k).sum(1) - 1).clamp_min(1)


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
    ids = torch.full((num_rows, top_k), PAD, dtype=torch.long, device=device)
    visits = torch.zeros((num_rows, top_k), dtype=torch.long, device=device)
    if items.numel():
        span = int(items.max()) + 1
        keys, counts = torch.unique_consecutive(
            _sort_values(_sortable_key(rows, items, span, num_rows)), return_counts=True
        )
        # One spare slot: the seed may be among the most visited and is dropped below.
        slots = top_k + (exclude is not None)
        threshold = _count_threshold(keys // span, counts, num_rows, slots)
        keep = torch.nonzero(counts >= threshold.index_select(0, keys // span)).squeeze(
            1
        )
        keys, counts = keys.index_select(0, keep).long(), counts.index_select(0, keep)
        pair_rows, pair_items = keys // span, keys % span
        if exclude is not None:
            counts = torch.where(
                pair_items == exclude.index_select(0, pair_rows), 0, counts
            )
        # Order by (row, visits desc); the stable sort keeps ties in ascending item id,
        # and excluded pairs (0 visits) go last in their row.
        ceiling = int(counts.max()) + 1
        order = _stable_argsort(pair_rows * ceiling + (ceiling - 1 - counts))
        pair_rows = pair_rows.index_select(0, order)
        per_row = torch.bincount(pair_rows, minlength=num_rows)
        first = torch.cumsum(per_row, 0) - per_row  # start of each row's run
        rank = torch.arange(pair_rows.numel(), device=device) - first.index_select(
            0, pair_rows
        )
        counts = counts.index_select(0, order)
        kept = torch.nonzero((rank < top_k) & (counts > 0)).squeeze(1)
        slot = (pair_rows.index_select(0, kept), rank.index_select(0, kept))
        ids[slot] = pair_items.index_select(0, order.index_select(0, kept))
        visits[slot] = counts.index_select(0, kept)
    total = visits.sum(dim=1, keepdim=True)
    weights = (visits / total.clamp_min(1)).float()
    return Neighbors(ids, visits, weights)


def debiased(nbrs: Neighbors, item_degree: Tensor, power: float) -> Neighbors:
    r"""Importance weights divided by the neighbour's degree to ``power``, renormalised.

    Visit counts of item -> context -> item walks approximate
    :math:`(D_I^{-1} R^\top D_U^{-1} R)_{ij} = \sqrt{d_j / d_i}\,(\tilde R^\top
    \tilde R)_{ij}`: they favour popular neighbours by :math:`\sqrt{d_j}`. With
    ``power`` 0.5 the weights become the symmetric-normalised filter LightGCN and
    GF-CF smooth with; 0 keeps the paper's visit shares. Which neighbours are kept
    (the top T by visits) does not change.
    Shapes: nbrs (B, T), item_degree (I,) -> Neighbors (B, T).
    """
    if power == 0.0:
        return nbrs
    degree = item_degree.index_select(0, nbrs.ids.clamp_min(0).flatten())
    scale = degree.view_as(nbrs.ids).double().clamp_min(1.0) ** -power  # (B, T)
    score = nbrs.visits * scale  # empty slots have 0 visits
    weights = score / score.sum(dim=1, keepdim=True).clamp_min(1e-30)
    return Neighbors(nbrs.ids, nbrs.visits, weights.float())


def item_neighbors(
    graph: CSRGraph, seeds: Tensor, cfg: SamplerConfig, *, generator: torch.Generator
) -> Neighbors:
    """Importance neighbourhoods of items (isolated items get an empty row).

    Shapes: seeds (B,) int64 item indices -> Neighbors (B, cfg.top_k).
    """
    seeds = seeds.to(graph.device, torch.long)
    walkers = torch.nonzero(graph.item_degree.index_select(0, seeds)).squeeze(1)
    if walkers.numel() == seeds.numel():  # the usual case: every seed can walk
        rows, items = walk_visits(graph, seeds, cfg, generator=generator)
    else:
        rows, items = walk_visits(
            graph, seeds.index_select(0, walkers), cfg, generator=generator
        )
        rows = walkers.index_select(0, rows)
    nbrs = top_visited(rows, items, seeds.numel(), cfg.top_k, exclude=seeds)
    return debiased(nbrs, graph.item_degree, cfg.degree_power)


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
    nbrs = top_visited(rows, items, contexts.numel(), cfg.top_k)
    return debiased(nbrs, graph.item_degree, cfg.degree_power)


def drop_pairs(
    nbrs: Neighbors, dst: Tensor, pair_rows: Tensor, pair_items: Tensor
) -> Neighbors:
    """``nbrs`` without the items that pairs (row, item) name; weights renormalised.

    Training hides a context's positive item from the context's own neighbourhood:
    its walks start at the engagement being predicted, so the item would otherwise
    be pooled into the query that must find it, and the model would learn to spot
    items already in the pool, which test items never are (SimpleX removes the
    target from the history the same way).
    Shapes: nbrs (B, T) rows for nodes ``dst`` (B,); pair_rows, pair_items (P,) ->
    Neighbors (B, T), dropped slots PAD with 0 visits, rows otherwise in order.
    """
    span = max(int(nbrs.ids.max()) + 1, int(pair_items.max()) + 1, 1)
    keys = torch.unique(pair_rows.long() * span + pair_items.long())  # sorted
    slot_keys = dst.long().unsqueeze(1) * span + nbrs.ids  # (B, T)
    found = torch.searchsorted(keys, slot_keys).clamp(max=keys.numel() - 1)
    hidden = (keys[found] == slot_keys) & (nbrs.ids >= 0)  # (B, T)
    visits = nbrs.visits.masked_fill(hidden, 0)
    # Stable: filled slots keep their visit order, the emptied ones move last.
    order = torch.sort(visits, dim=1, descending=True, stable=True).indices
    visits = visits.gather(1, order)
    ids = nbrs.ids.masked_fill(hidden, PAD).gather(1, order)
    total = visits.sum(dim=1, keepdim=True)
    return Neighbors(ids, visits, (visits / total.clamp_min(1)).float())
