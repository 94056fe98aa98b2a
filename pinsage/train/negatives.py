"""Negatives: random items shared by a minibatch, and hard negatives per query.

Hard negatives are items ranked inside a band of the query's personalised-PageRank
order, estimated from random-walk visit counts (the paper's ranks 2000-5000): related to
the query, but less than its positives. The curriculum adds one per epoch.
"""

from __future__ import annotations

import math
from dataclasses import replace

import torch
from torch import Tensor

from pinsage.config import SamplerConfig
from pinsage.graph.store import CSRGraph
from pinsage.sampler.walks import PAD, context_neighbors, item_neighbors

__all__ = [
    "hard_negatives",
    "hard_negatives_at",
    "negative_distribution",
    "random_negatives",
    "with_batch_items",
]


def negative_distribution(graph: CSRGraph, power: float) -> Tensor | None:
    """Item sampling probabilities ~ degree^power over items with interactions.

    Items without training interactions (catalogue only: cold) are never drawn: they
    are never positives either, so as negatives they would teach the model that an
    item without a neighbourhood is one to push away, and it would never recommend
    a new item. None for uniform over every item (power 0, no such item).
    Shapes: -> (I,) float64 summing to 1.
    """
    degree = graph.item_degree
    warm = degree > 0
    if power == 0 and bool(warm.all()):
        return None
    weights = torch.where(warm, degree.double() ** power, 0.0)
    return weights / weights.sum()


def random_negatives(
    num: int, num_items: int, probs: Tensor | None, *, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``num`` random items (with replacement) and the log of their expected count.

    The sampled-softmax correction subtracts log(num * q_n), the expected number of
    times item n is in the sample: with it, the sampled partition sum estimates the
    full one over the catalogue (uniform: +log(num_items / num) on every negative).
    Shapes: probs (I,) or None -> (ids (R,) int64, log_expected (R,) float32).
    """
    if probs is None:
        ids = torch.randint(
            num_items, (num,), generator=generator, device=generator.device
        )
        return ids, torch.full((num,), math.log(num / num_items))
    ids = torch.multinomial(probs, num, replacement=True, generator=generator)
    return ids, (probs.index_select(0, ids) * num).log().float()


def with_batch_items(
    graph: CSRGraph,
    random_ids: Tensor,
    batch_items: Tensor,
    probs: Tensor | None,
) -> tuple[Tensor, Tensor]:
    """Random negatives plus the minibatch's engaged items, and their mixed correction.

    Engaged items are a second sample, by popularity: an engagement names item n with
    probability p_n = degree_n / edges. Together the two samples hold n R r_n + B p_n
    times in expectation (r: the random negatives' distribution), and the softmax
    correction subtracts the log of that from every negative's logit (mixed negative
    sampling, Yang et al. 2020), so popular items are met often but not over-penalised.
    Shapes: random_ids (R,), batch_items (B,), probs (I,) or None -> (ids (R+B,),
    log_expected (R+B,) float32).
    """
    ids = torch.cat([random_ids, batch_items])
    if probs is None:
        r = torch.full(ids.shape, 1.0 / graph.num_items, dtype=torch.float64)
    else:
        r = probs.index_select(0, ids)
    p = graph.item_degree.index_select(0, ids).double() / graph.num_edges
    expected = random_ids.numel() * r + batch_items.numel() * p
    return ids, expected.log().float()


def hard_negatives_at(epoch: int, cap: int) -> int:
    """Curriculum: hard negatives per query in (1-based) ``epoch``: n - 1, capped."""
    return max(0, min(epoch - 1, cap))


def hard_negatives(
    graph: CSRGraph,
    starts: Tensor,
    num: int,
    band: tuple[float, float],
    cfg: SamplerConfig,
    *,
    generator: torch.Generator,
    from_context: bool = False,
) -> Tensor:
    """``num`` items per start drawn from ranks [lo, hi) of its walk-visit order.

    lo, hi = band * catalogue size. A start whose walks reached fewer than lo items
    draws from the less visited half of what they reached; one that reached nothing
    gets PAD. An item start is excluded from its own ranking.
    Shapes: starts (B,) item (or context) indices -> (B, num) int64, PAD = -1.
    """
    num_items = graph.num_items
    lo = int(band[0] * num_items)
    hi = max(lo + 1, int(band[1] * num_items))
    neighbors = context_neighbors if from_context else item_neighbors
    ranked = neighbors(graph, starts, replace(cfg, top_k=hi), generator=generator).ids
    reached = (ranked >= 0).sum(1)  # (B,)
    low = torch.where(reached > lo, torch.full_like(reached, lo), reached // 2)
    u = torch.rand(starts.numel(), num, device=starts.device, generator=generator)
    rank = low.unsqueeze(1) + (u * (reached - low).unsqueeze(1)).long()  # (B, num)
    picked = ranked.gather(1, rank.clamp_max(hi - 1))
    return torch.where(reached.unsqueeze(1) > 0, picked, PAD)
