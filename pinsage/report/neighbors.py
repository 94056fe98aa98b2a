"""Nearest neighbours of a few sample items, looked up through the run's index.

Each sample item and each neighbour carries its features (and planted cluster, for
generated data) so that a person reading the report can judge the neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pinsage.graph.store import Graph
from pinsage.index.search import Index, UnknownIdError
from pinsage.report.catalogue import item_clusters, item_features

__all__ = [
    "NEIGHBOURS_SHOWN",
    "NUM_SAMPLE_ITEMS",
    "ItemView",
    "SampleLookup",
    "sample_items",
    "sample_lookups",
]

NUM_SAMPLE_ITEMS = 4
NEIGHBOURS_SHOWN = 5
SAMPLE_SEED = 0  # the same sample items in every report of a root, so reports compare


@dataclass(frozen=True)
class ItemView:
    """One item as the report shows it; ``score`` is None for the query item."""

    item: object
    score: float | None
    cluster: object | None
    features: dict[str, str]


@dataclass(frozen=True)
class SampleLookup:
    """A sample item and its nearest items by the index, best first."""

    query: ItemView
    neighbors: list[ItemView]

    def same_cluster(self) -> int | None:
        """How many neighbours share the query's planted cluster (None: unknown)."""
        if self.query.cluster is None:
            return None
        return sum(n.cluster == self.query.cluster for n in self.neighbors)


def sample_items(index: Index, graph: Graph | None) -> list:
    """A few indexed item ids, the same for the same index and graph.

    With the graph, items of more than median degree: typical items read better than
    the cold tail (too few interactions to place them) and than the head alone.
    """
    rng = np.random.default_rng(SAMPLE_SEED)
    if graph is None:
        rows = rng.choice(len(index), min(NUM_SAMPLE_ITEMS, len(index)), replace=False)
        return index.ids[np.sort(rows)].tolist()  # Python ints or strs
    degrees = graph.csr.item_degrees().numpy()
    candidates = np.flatnonzero(degrees > np.median(degrees))
    if len(candidates) < NUM_SAMPLE_ITEMS:  # (near-)uniform degrees
        candidates = np.arange(len(degrees))
    chosen = []
    for row in rng.permutation(candidates).tolist():
        item = graph.item_ids[row].as_py()
        try:
            index.rows([item])
        except UnknownIdError:  # an index of another graph: skip what it lacks
            continue
        chosen.append(item)
        if len(chosen) == NUM_SAMPLE_ITEMS:
            break
    return chosen


def sample_lookups(root: Path, index: Index, graph: Graph | None) -> list[SampleLookup]:
    """The sample items' nearest neighbours (`Index.similar`) with their features."""
    items = sample_items(index, graph)
    if not items:
        return []
    docs = index.similar(items, k=NEIGHBOURS_SHOWN)  # fewer in a tiny catalogue
    everyone = list(
        dict.fromkeys([*items, *(n["item"] for d in docs for n in d["neighbors"])])
    )
    features = item_features(root, graph, everyone)
    clusters = item_clusters(root, everyone)

    def view(item: object, score: float | None) -> ItemView:
        return ItemView(item, score, clusters.get(item), features.get(item, {}))

    return [
        SampleLookup(
            view(item, None), [view(n["item"], n["score"]) for n in doc["neighbors"]]
        )
        for item, doc in zip(items, docs, strict=True)
    ]
