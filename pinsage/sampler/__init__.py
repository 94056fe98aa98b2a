"""Random-walk importance sampling and K-layer computation graphs."""

from pinsage.sampler.blocks import (
    Block,
    ComputationGraph,
    build_blocks,
    context_blocks,
    item_blocks,
    table_lookup,
)
from pinsage.sampler.table import CHUNK, neighborhood_table
from pinsage.sampler.walks import (
    PAD,
    Neighbors,
    context_neighbors,
    item_neighbors,
    top_visited,
    walk_visits,
)

__all__ = [
    "CHUNK",
    "PAD",
    "Block",
    "ComputationGraph",
    "Neighbors",
    "build_blocks",
    "context_blocks",
    "context_neighbors",
    "item_blocks",
    "item_neighbors",
    "neighborhood_table",
    "top_visited",
    "table_lookup",
    "walk_visits",
]
