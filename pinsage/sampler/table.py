"""Neighbourhood tables: every node's importance neighbourhood, computed once.

Nodes are processed in fixed ranges of ``CHUNK`` nodes, each with a generator seeded by
(seed, range start), so a node's neighbourhood depends only on the graph, the node and
the seed: never on how the work is split among workers or batches.
"""

from __future__ import annotations

import logging

import torch
from tqdm.auto import tqdm

from pinsage.config import SamplerConfig
from pinsage.graph.store import CSRGraph
from pinsage.progress import ProgressLog
from pinsage.sampler.walks import Neighbors, context_neighbors, item_neighbors
from pinsage.seeding import generator_for

__all__ = ["CHUNK", "neighborhood_table"]

log = logging.getLogger(__name__)

CHUNK = 4096  # nodes per seeded range; part of the table's definition, keep it fixed


def neighborhood_table(
    graph: CSRGraph,
    cfg: SamplerConfig,
    *,
    contexts: bool = False,
    start: int = 0,
    stop: int | None = None,
) -> Neighbors:
    """Neighbourhoods of items (or contexts) ``start..stop-1`` (all by default).

    ``start`` must be a multiple of `CHUNK` so that ranges line up with the seeding.
    Shapes: -> Neighbors (stop - start, cfg.top_k).
    """
    total = graph.num_contexts if contexts else graph.num_items
    stop = total if stop is None else min(stop, total)
    assert start % CHUNK == 0, f"start {start} is not a multiple of CHUNK ({CHUNK})"
    sample = context_neighbors if contexts else item_neighbors
    parts = []
    what = "context" if contexts else "item"
    progress = ProgressLog(log, f"{what} neighbourhoods", stop - start, unit="nodes")
    for lo in tqdm(
        range(start, stop, CHUNK), desc="neighbourhoods", unit="chunk", disable=None
    ):
        nodes = torch.arange(lo, min(lo + CHUNK, stop))
        gen = generator_for(cfg.seed, lo, int(contexts))
        parts.append(sample(graph, nodes, cfg, generator=gen))
        progress.update(min(lo + CHUNK, stop) - start)
    return Neighbors(*(torch.cat(p) for p in zip(*parts, strict=True)))
