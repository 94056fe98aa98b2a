"""The minibatch loss: embeddings of a `TrainBatch` -> one scalar."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from pinsage.config import TrainConfig
from pinsage.train.batch import TrainBatch
from pinsage.train.loss import (
    in_batch_softmax_loss,
    max_margin_loss,
    sampled_softmax_loss,
)

__all__ = ["BatchLoss", "batch_loss"]


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


def _cold_loss(
    model: nn.Module, batch: TrainBatch, query: Tensor, cfg: TrainConfig
) -> Tensor:
    """`in_batch_softmax_loss` of the queries against their items embedded cold.

    Only the pairs' own items are embedded cold (``batch.cold_features``), not every
    seed of the item graph. Shapes: query (P, D) -> scalar.
    """
    z_cold = model.embed_cold(batch.cold_features)  # (P, D)
    return in_batch_softmax_loss(query, z_cold, batch.cold_items, cfg.temperature)


def batch_loss(model: nn.Module, batch: TrainBatch, cfg: TrainConfig) -> Tensor:
    """Item-to-item and/or context-to-item loss of one minibatch (``cfg.objective``)."""
    z_items = model(batch.items, batch.item_features)  # (N_seeds, D)
    negatives = z_items[batch.negative_pos]  # (R, D)
    losses = []
    cold_query = None  # the queries of the pairs the cold-start loss takes
    if batch.contexts is not None:
        z_contexts = model(batch.contexts, batch.context_features)
        cold_query = z_contexts[batch.context_pos]
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
        if cold_query is None:
            cold_query = z_items[batch.query_pos[keep]]
    if cfg.cold_weight > 0 and cold_query is not None:
        cold = _cold_loss(model, batch, cold_query, cfg)
        losses.append(cfg.cold_weight * cold)
    return torch.stack(losses).sum()


class BatchLoss(nn.Module):
    """`batch_loss` as a module: ``forward(batch)`` is the minibatch's loss.

    The training step calls this, not the model: one ``forward`` covers every model
    call of a step (items, then contexts), which is the unit DistributedDataParallel
    synchronises (it may wrap this module, never the model itself, so checkpoints
    keep the model's own parameter names).

    Shapes: batch (a `TrainBatch` of B pairs) -> () scalar loss.
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch: TrainBatch) -> Tensor:
        """The loss of ``batch`` (on the model's device)."""
        return batch_loss(self.model, batch, self.cfg)
