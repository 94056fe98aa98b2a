"""Nearest-neighbour lookup: a FAISS index over the item embeddings, and its search."""

from pinsage.index.build import KINDS, build_index, plan_index
from pinsage.index.search import MAX_K, Index, UnknownItemError

__all__ = ["KINDS", "MAX_K", "Index", "UnknownItemError", "build_index", "plan_index"]
