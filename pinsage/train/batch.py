"""One training minibatch, assembled on the producer side (CPU workers).

Everything random in a batch comes from a generator seeded by (seed, draw), so batch
``step`` is the same whichever producer builds it and however many producers there
are, and a resumed run sees exactly the batches an uninterrupted one would. ``draw``
is the batch's index in the run's stream of batches: ``step`` in a single process,
``step * workers + rank`` for a data-parallel replica (each draws its own batches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from functools import partial

import torch
from torch import Tensor

from pinsage.config import SamplerConfig, TrainConfig
from pinsage.features import FeatureStore
from pinsage.graph.store import CSRGraph
from pinsage.nn.projector import FeatureBatch
from pinsage.sampler.blocks import (
    ComputationGraph,
    build_blocks,
    context_blocks,
    item_blocks,
    table_lookup,
)
from pinsage.sampler.walks import PAD, Neighbors, drop_pairs
from pinsage.seeding import generator_for
from pinsage.train.examples import PositivePairs, sample_positive_pairs
from pinsage.train.negatives import (
    hard_negatives,
    hard_negatives_at,
    random_negatives,
    with_batch_items,
)

__all__ = ["TrainBatch", "make_batch"]


@dataclass
class TrainBatch:
    """A minibatch: two computation graphs and where each example sits in them.

    ``items`` computes every item the losses need (queries, positives, negatives);
    ``contexts`` the contexts of the engagements (None for the item objective).
    Positions index the seeds of those graphs. Shapes: B pairs, R shared negatives,
    H hard negatives per query: query_pos, positive_pos, context_pos, item_pair (B,);
    negative_pos (R,), negative_log_q (R,) (R = random negatives, plus B engaged
    items with ``in_batch_negatives``); item_negative_ok and context_negative_ok
    (B, R) False where a shared negative is that objective's positive (the pair's
    positive item, or the context's query item) or the query itself; item_hard_pos,
    context_hard_pos (B, H), -1 = none. With ``cold_weight``: cold_items (P,) the item
    of each pair the cold-start loss takes (the context objective's query items, else
    the item pairs' positives), cold_features their features.
    """

    step: int
    items: ComputationGraph
    item_features: FeatureBatch
    contexts: ComputationGraph | None
    context_features: FeatureBatch | None
    query_pos: Tensor
    positive_pos: Tensor
    context_pos: Tensor
    item_pair: Tensor
    negative_pos: Tensor
    negative_log_q: Tensor
    item_negative_ok: Tensor
    context_negative_ok: Tensor
    item_hard_pos: Tensor
    context_hard_pos: Tensor
    cold_items: Tensor | None = None
    cold_features: FeatureBatch | None = None

    def to(self, device: torch.device | str, non_blocking: bool = False) -> TrainBatch:
        """Copy every tensor (and graph, and feature batch) to ``device``."""
        moved = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and hasattr(value, "to") and f.name != "step":
                value = value.to(device, non_blocking=non_blocking)
            moved[f.name] = value
        return TrainBatch(**moved)

    def pin_memory(self) -> TrainBatch:
        """Page-lock the feature tensors so host-to-GPU copies can overlap compute."""
        for name in ("item_features", "context_features", "cold_features"):
            features = getattr(self, name)
            if features is not None:
                setattr(self, name, features.pin_memory())
        return self


def _positions(seeds: Tensor, ids: Tensor) -> Tensor:
    """Position of each of ``ids`` in sorted ``seeds``; PAD stays -1."""
    pos = torch.searchsorted(seeds, ids.clamp_min(0))
    return torch.where(ids >= 0, pos, PAD)


def _hard(
    graph: CSRGraph,
    starts: Tensor,
    positives: Tensor,
    num: int,
    sampler: SamplerConfig,
    cfg: TrainConfig,
    gen: torch.Generator,
    *,
    active: bool,
    from_context: bool,
) -> Tensor:
    """Hard negatives of one objective, PAD where inactive or equal to the positive.

    Shapes: starts, positives (B,) -> (B, num) item ids, PAD = -1.
    """
    if not (num and active):
        return torch.full((starts.numel(), num), PAD, dtype=torch.long)
    hard = hard_negatives(
        graph,
        starts,
        num,
        cfg.hard_band,
        sampler,
        generator=gen,
        from_context=from_context,
    )
    # A positive ranked inside the band is no negative.
    return torch.where(hard == positives.unsqueeze(1), PAD, hard)


def _positive_hider(
    contexts: Tensor, positives: Tensor, active: bool
) -> Callable[[Tensor, Neighbors], Neighbors] | None:
    """What hides each context's positive items from its neighbourhood (`drop_pairs`).

    Shapes: contexts, positives (B,) of the batch's (context, item) pairs.
    """
    if not active:
        return None
    return lambda dst, nbrs: drop_pairs(nbrs, dst, contexts, positives)


def _hard_negatives(
    graph: CSRGraph,
    pairs: PositivePairs,
    epoch: int,
    sampler: SamplerConfig,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Each pair's hard negatives for the item and the context objective (`_hard`).

    Shapes: B pairs -> (B, H) item ids each, PAD where an objective is off.
    """
    hard = partial(
        _hard,
        graph,
        num=hard_negatives_at(epoch, cfg.max_hard_negatives),
        sampler=sampler,
        cfg=cfg,
        gen=gen,
    )
    item_hard = hard(
        pairs.queries,
        pairs.positives,
        active=cfg.objective in ("item", "both"),
        from_context=False,
    )
    context_hard = hard(
        pairs.contexts,
        pairs.queries,
        active=cfg.objective in ("context", "both"),
        from_context=True,
    )
    return item_hard, context_hard


def _shared_negatives(
    graph: CSRGraph,
    queries: Tensor,
    negative_probs: Tensor | None,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """The batch's shared negatives and each one's log sampling probability.

    Random items, then (``in_batch_negatives``) the batch's own query items.
    Shapes: queries (B,) -> (N,) item ids, (N,) log q.
    """
    neg_ids, log_q = random_negatives(
        cfg.num_random_negatives, graph.num_items, negative_probs, generator=gen
    )
    if cfg.in_batch_negatives:
        neg_ids, log_q = with_batch_items(graph, neg_ids, queries, negative_probs)
    return neg_ids, log_q


def _computation_graphs(
    graph: CSRGraph,
    item_seeds: Tensor,
    context_seeds: Tensor | None,
    sampler: SamplerConfig,
    gen: torch.Generator,
    tables: tuple[Neighbors, Neighbors] | None,
    hide: Callable[[Tensor, Neighbors], Neighbors] | None,
) -> tuple[ComputationGraph, ComputationGraph | None]:
    """The items' and (when ``context_seeds``) the contexts' computation graphs.

    Neighbourhoods from fresh walks, or looked up in ``tables``; ``hide`` drops each
    context's positives from its own neighbourhood.
    """
    if tables is None:
        items = item_blocks(graph, item_seeds, sampler, generator=gen)
        if context_seeds is None:
            return items, None
        contexts = context_blocks(
            graph, context_seeds, sampler, generator=gen, hide=hide
        )
        return items, contexts
    item_fn, lookup = table_lookup(tables[0]), table_lookup(tables[1])
    items = build_blocks(item_seeds, sampler.num_layers, item_fn)
    if context_seeds is None:
        return items, None
    contexts = build_blocks(
        context_seeds,
        sampler.num_layers,
        item_fn,
        context_fn=lambda dst: lookup(dst) if hide is None else hide(dst, lookup(dst)),
    )
    return items, contexts


def make_batch(
    graph: CSRGraph,
    store: FeatureStore,
    sampler: SamplerConfig,
    cfg: TrainConfig,
    step: int,
    epoch: int,
    negative_probs: Tensor | None,
    tables: tuple[Neighbors, Neighbors] | None = None,
    *,
    draw: int | None = None,
) -> TrainBatch:
    """Build minibatch ``step`` (in 1-based ``epoch``) of a run.

    Neighbourhoods come from fresh walks, or from ``tables`` (every item's and every
    context's, ``cfg.neighborhoods == "epoch"``). ``draw`` seeds the batch's random
    choices (None: ``step``); see the module docstring.
    """
    gen = generator_for(cfg.seed, step if draw is None else draw)
    pairs = sample_positive_pairs(graph, cfg.batch_size, generator=gen)
    neg_ids, log_q = _shared_negatives(graph, pairs.queries, negative_probs, cfg, gen)
    use_contexts = cfg.objective in ("context", "both")
    item_hard, context_hard = _hard_negatives(graph, pairs, epoch, sampler, cfg, gen)
    # The context objective's positive is the query: the pair's other item is unused.
    positives = pairs.positives if cfg.objective != "context" else pairs.queries
    wanted = [pairs.queries, positives, neg_ids, item_hard.flatten(), context_hard]
    item_seeds = torch.unique(torch.cat([w.flatten() for w in wanted]))
    item_seeds = item_seeds[item_seeds >= 0]
    context_seeds = torch.unique(pairs.contexts)
    hide = _positive_hider(pairs.contexts, pairs.queries, cfg.hide_positives)
    cold_items = None
    if cfg.cold_weight > 0:
        cold_items = pairs.queries if use_contexts else pairs.positives[pairs.item_pair]
    items, contexts = _computation_graphs(
        graph,
        item_seeds,
        context_seeds if use_contexts else None,
        sampler,
        gen,
        tables,
        hide,
    )
    return TrainBatch(
        step=step,
        items=items,
        item_features=store.gather(items.input_nodes),
        contexts=contexts,
        context_features=None
        if contexts is None
        else store.gather(contexts.input_nodes),
        query_pos=_positions(item_seeds, pairs.queries),
        positive_pos=_positions(item_seeds, positives),
        context_pos=_positions(context_seeds, pairs.contexts),
        item_pair=pairs.item_pair,
        negative_pos=_positions(item_seeds, neg_ids),
        negative_log_q=log_q,
        # A query is no negative of itself, nor its positive.
        item_negative_ok=(neg_ids != pairs.positives.unsqueeze(1))
        & (neg_ids != pairs.queries.unsqueeze(1)),
        context_negative_ok=neg_ids.unsqueeze(0) != pairs.queries.unsqueeze(1),
        item_hard_pos=_positions(item_seeds, item_hard),
        context_hard_pos=_positions(item_seeds, context_hard),
        cold_items=cold_items,
        cold_features=None if cold_items is None else store.gather(cold_items),
    )
