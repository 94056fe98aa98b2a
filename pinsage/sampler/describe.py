"""Neighbourhoods by external id: the library side of `pinsage sample`."""

from __future__ import annotations

import torch

from pinsage.config import SamplerConfig
from pinsage.graph.store import Graph
from pinsage.sampler.walks import Neighbors, context_neighbors, item_neighbors

__all__ = ["describe_neighborhoods"]


def _entries(graph: Graph, nbrs: Neighbors) -> list[list[dict]]:
    filled = (nbrs.ids >= 0).tolist()
    ids = graph.item_ids.take(nbrs.ids.clamp_min(0).flatten().numpy()).to_pylist()
    top_k = nbrs.ids.shape[1]
    visits, weights = nbrs.visits.tolist(), nbrs.weights.tolist()
    return [
        [
            {
                "item": ids[r * top_k + j],
                "visits": visits[r][j],
                "weight": weights[r][j],
            }
            for j in range(top_k)
            if filled[r][j]
        ]
        for r in range(len(filled))
    ]


def describe_neighborhoods(
    graph: Graph, items: list, users: list, cfg: SamplerConfig
) -> dict:
    """Sample the neighbourhoods of external item and user ids.

    Returns ``{"seeds": [{"item": ID, "neighbors": [{"item": ID, "visits": N,
    "weight": alpha}, ...]}, ...]}``, items first then users (keyed ``"user"``), each
    neighbour list in decreasing visit order. Items and users draw from separate
    generators seeded with ``cfg.seed``, so an item's neighbourhood does not depend on
    which users are asked for alongside it.
    """
    seeds = []
    if items:
        index = torch.from_numpy(graph.item_index(items))
        gen = torch.Generator().manual_seed(cfg.seed)
        found = _entries(graph, item_neighbors(graph.csr, index, cfg, generator=gen))
        seeds += [
            {"item": i, "neighbors": n}
            for i, n in zip(
                graph.item_ids.take(index.numpy()).to_pylist(), found, strict=True
            )
        ]
    if users:
        index = torch.from_numpy(graph.context_index(users))
        gen = torch.Generator().manual_seed(cfg.seed)
        found = _entries(graph, context_neighbors(graph.csr, index, cfg, generator=gen))
        seeds += [
            {"user": u, "neighbors": n}
            for u, n in zip(
                graph.context_ids.take(index.numpy()).to_pylist(), found, strict=True
            )
        ]
    return {"seeds": seeds}
