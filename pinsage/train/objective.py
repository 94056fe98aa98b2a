"""The minibatch loss: embeddings of a `TrainBatch` -> one scalar."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pinsage.config import TrainConfig
from pinsage.train.batch import TrainBatch
from pinsage.train.loss import max_margin_loss, sampled_softmax_loss

__all__ = ["batch_loss"]


def _pair_loss(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor,
    hard_pos: Tensor,
    z_items: Tensor,
    negative_ok: Tensor,
    log_q: Tensor,
    cfg: TrainConfig,
) -> Tensor:
    hard = hard_mask = None
    if hard_pos.shape[1]:
        hard = z_items[hard_pos.clamp_min(0)]  # (B, H, D)
        hard_mask = hard_pos >= 0
    if cfg.loss == "margin":
        return max_margin_loss(
            query,
            positive,
            negatives,
            cfg.margin,
            hard=hard,
            hard_mask=hard_mask,
            negative_mask=negative_ok,
        )
    return sampled_softmax_loss(
        query,
        positive,
        negatives,
        cfg.temperature,
        log_q=log_q,
        hard=hard,
        hard_mask=hard_mask,
        negative_mask=negative_ok,
    )


def batch_loss(model: nn.Module, batch: TrainBatch, cfg: TrainConfig) -> Tensor:
    """Item-to-item and/or context-to-item loss of one minibatch (``cfg.objective``)."""
    z_items = model(batch.items, batch.item_features)  # (N_seeds, D)
    negatives = z_items[batch.negative_pos]  # (R, D)
    losses = []
    if batch.contexts is not None:
        z_contexts = model(batch.contexts, batch.context_features)
        losses.append(
            _pair_loss(
                z_contexts[batch.context_pos],
                z_items[batch.query_pos],
                negatives,
                batch.context_hard_pos,
                z_items,
                batch.context_negative_ok,
                batch.negative_log_q,
                cfg,
            )
        )
    if cfg.objective in ("item", "both") and bool(batch.item_pair.any()):
        keep = batch.item_pair
        losses.append(
            _pair_loss(
                z_items[batch.query_pos[keep]],
                z_items[batch.positive_pos[keep]],
                negatives,
                batch.item_hard_pos[keep],
                z_items,
                batch.item_negative_ok[keep],
                batch.negative_log_q,
                cfg,
            )
        )
    return torch.stack(losses).sum()
