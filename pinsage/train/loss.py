"""Losses over one query's positive and its negatives (DESIGN.md "Loss").

Both take the query, positive and negative embeddings, score by dot product, and treat
the minibatch's shared random negatives and each query's hard negatives alike.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["in_batch_softmax_loss", "max_margin_loss", "sampled_softmax_loss"]


def _negative_scores(
    query: Tensor, negatives: Tensor, hard: Tensor | None
) -> tuple[Tensor, Tensor | None]:
    shared = query @ negatives.T  # (B, R)
    if hard is None:
        return shared, None
    return shared, torch.einsum("bd,bhd->bh", query, hard)  # (B, H)


def max_margin_loss(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor,
    margin: float,
    *,
    hard: Tensor | None = None,
    hard_mask: Tensor | None = None,
    negative_mask: Tensor | None = None,
) -> Tensor:
    """Mean of max(0, z_q.z_n - z_q.z_i + margin) over all (q, i, n) triples.

    ``negative_mask`` (B, R) and ``hard_mask`` (B, H) mark the triples that count
    (False: padding, or a negative that is in fact the positive).
    Shapes: query, positive (B, D); negatives (R, D); hard (B, H, D) -> scalar.
    """
    pos = (query * positive).sum(-1, keepdim=True)  # (B, 1)
    shared, hard_scores = _negative_scores(query, negatives, hard)
    terms = [(F.relu(shared - pos + margin), negative_mask)]
    if hard_scores is not None:
        terms.append((F.relu(hard_scores - pos + margin), hard_mask))
    total = query.new_zeros(())
    count = query.new_zeros(())
    for values, mask in terms:
        if mask is None:
            total = total + values.sum()
            count = count + values.numel()
        else:
            total = total + (values * mask).sum()
            count = count + mask.sum()
    return total / count.clamp_min(1)


def sampled_softmax_loss(
    query: Tensor,
    positive: Tensor,
    negatives: Tensor,
    temperature: float,
    *,
    log_q: Tensor | None = None,
    hard: Tensor | None = None,
    hard_mask: Tensor | None = None,
    negative_mask: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of the positive against the negatives, logits = z_q.z / tau.

    Random negatives' logits are corrected by subtracting ``log_q`` (R,), their log
    sampling probability (as in ItemSage), so popular items are not over-penalised.
    Masked-out negatives get -inf logits.
    Shapes: query, positive (B, D); negatives (R, D); hard (B, H, D) -> scalar.
    """
    pos = (query * positive).sum(-1, keepdim=True) / temperature  # (B, 1)
    shared, hard_scores = _negative_scores(query, negatives, hard)
    shared = shared / temperature
    if log_q is not None:
        shared = shared - log_q.unsqueeze(0)
    if negative_mask is not None:
        shared = shared.masked_fill(~negative_mask, float("-inf"))
    logits = [pos, shared]
    if hard_scores is not None:
        hard_scores = hard_scores / temperature
        if hard_mask is not None:
            hard_scores = hard_scores.masked_fill(~hard_mask, float("-inf"))
        logits.append(hard_scores)
    logits = torch.cat(logits, dim=1)  # (B, 1 + R + H)
    target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


def in_batch_softmax_loss(
    query: Tensor, positive: Tensor, items: Tensor, temperature: float
) -> Tensor:
    """Cross-entropy of each pair's positive against the other pairs' positives.

    logits_ij = z_q_i . z_p_j / tau, target j = i; a column holding row i's own item
    again (the item engaged twice in the minibatch) is masked. The negatives are
    engaged items, met as often as they are engaged, and are left uncorrected, so
    popularity cancels: the loss ranks by how well an item suits the query, not by
    how popular it is.
    Shapes: query, positive (B, D); items (B,) int64 item of each positive -> scalar.
    """
    logits = query @ positive.T / temperature  # (B, B)
    eye = torch.eye(items.numel(), dtype=torch.bool, device=items.device)
    logits = logits.masked_fill((items[:, None] == items[None, :]) & ~eye, -torch.inf)
    target = torch.arange(items.numel(), device=items.device)
    return F.cross_entropy(logits, target)
