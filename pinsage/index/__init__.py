"""Nearest-neighbour lookup: a FAISS index over the item embeddings, and its search."""

from pinsage.index.build import KINDS, build_index, plan_index
from pinsage.index.search import (
    MAX_K,
    Index,
    NoContextsError,
    UnknownIdError,
)

__all__ = [
    "KINDS",
    "MAX_K",
    "Index",
    "NoContextsError",
    "UnknownIdError",
    "build_index",
    "plan_index",
]
