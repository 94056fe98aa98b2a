"""Evaluation: ranking metrics over embeddings (the run-level job is `eval.job`)."""

from pinsage.eval.metrics import (
    MRR_RANK_SCALE,
    heldout_item_pairs,
    item_to_item_metrics,
    popularity_metrics,
    popularity_scores,
    ranking_metrics,
)

__all__ = [
    "MRR_RANK_SCALE",
    "heldout_item_pairs",
    "item_to_item_metrics",
    "popularity_metrics",
    "popularity_scores",
    "ranking_metrics",
]
