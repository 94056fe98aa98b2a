"""Evaluation: ranking metrics, training-free baselines (run-level job: `eval.job`)."""

from pinsage.eval.baselines import baseline_metrics, gfcf_scorer, itemknn_scorer
from pinsage.eval.cold import cold_item_mask, cold_start_metrics, top_k_share
from pinsage.eval.metrics import (
    MRR_RANK_SCALE,
    heldout_item_pairs,
    item_to_item_metrics,
    popularity_scorer,
    popularity_scores,
    ranking_metrics,
    scored_ranking_metrics,
)

__all__ = [
    "MRR_RANK_SCALE",
    "baseline_metrics",
    "cold_item_mask",
    "cold_start_metrics",
    "gfcf_scorer",
    "itemknn_scorer",
    "heldout_item_pairs",
    "item_to_item_metrics",
    "popularity_scorer",
    "popularity_scores",
    "ranking_metrics",
    "scored_ranking_metrics",
    "top_k_share",
]
