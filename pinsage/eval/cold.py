"""Cold-start metrics: how a model ranks items that have no training interactions.

An item is *cold* when the training graph holds no interaction of it (it is a node
only through the item catalogue, so its embedding comes from its features alone) and
*warm* otherwise. The held-out interactions are split by their item's kind and each
part is measured with the ranking of `scored_ranking_metrics` over the whole
catalogue, unchanged: a user's cold recall@K is the share of their held-out cold items
found in their top K of all unseen items. Beside it, the cold items' share of all top-K
slots against their share of the held-out interactions says whether the model
recommends cold items as often as users engage with them. The whole-catalogue figure
mixes two questions (is a new item placed before the right users, and does it outrank
the popular warm items those users also want?); the cold-only ranking answers the first
alone: each user ranks the cold items only (the item cold-start protocol of DropoutNet,
Heater and CLCRec), so features that carry new items show there even when nothing in
them says which new item will be popular.

Shape letters: U users (contexts), I items, E training interactions,
E_test held-out interactions, C users in one chunk, K cut-off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from pinsage.eval.metrics import (
    _check_ks,
    _csr_rows,
    _per_row,
    scored_ranking_metrics,
)

__all__ = ["cold_item_mask", "cold_start_metrics", "top_k_share"]


def cold_item_mask(item_indptr: Tensor) -> Tensor:
    """Items with no training interaction. Shapes: item_indptr (I+1,) -> (I,) bool."""
    return (item_indptr[1:] - item_indptr[:-1]) == 0


def _filter_rows(
    indptr: Tensor, indices: Tensor, keep: Tensor
) -> tuple[Tensor, Tensor]:
    """A CSR with only the entries where ``keep`` holds, rows kept in place.

    Shapes: indptr (R+1,), indices (E,), keep (E,) bool -> ((R+1,), (E',)).
    """
    rows = _per_row(indptr)  # (E,) row of every entry
    counts = torch.bincount(rows[keep], minlength=indptr.numel() - 1)  # (R,)
    kept_indptr = torch.zeros_like(indptr)
    torch.cumsum(counts, 0, out=kept_indptr[1:])
    return kept_indptr, indices[keep]


def top_k_share(
    score: Callable[[Tensor], Tensor],
    num_items: int,
    train_indptr: Tensor,
    train_indices: Tensor,
    users: Tensor,
    mask: Tensor,
    ks: Sequence[int],
    *,
    chunk_size: int = 2048,
) -> dict[int, float]:
    """Share of the top-K slots of ``users`` that hold an item where ``mask`` holds.

    Each user ranks every item by ``score`` with their training items excluded, as
    `scored_ranking_metrics` does; slots a user cannot fill (fewer than K unseen
    items) are not counted. Returns K -> share (0.0 without any slot).

    Shapes: train_indptr (U+1,), train_indices (E,), users (V,) int64,
        mask (I,) bool; ``score`` maps (C,) users to (C, I) scores.
    """
    ks = _check_ks(ks)
    top = min(ks[-1], num_items)
    found = torch.zeros(len(ks), dtype=torch.float64)
    slots = torch.zeros(len(ks), dtype=torch.float64)
    device = train_indices.device
    mask = mask.to(device)
    for start in range(0, users.numel(), chunk_size):
        batch = users[start : start + chunk_size].to(device)  # (C,)
        scores = score(batch)  # (C, I)
        pos, cols = _csr_rows(train_indptr, train_indices, batch)
        scores.index_put_((pos, cols.long()), scores.new_tensor(-torch.inf))
        values, items = torch.topk(scores, top, dim=1)  # (C, top)
        real = values > -torch.inf  # (C, top)
        hit = (mask[items] & real).double().sum(0).cumsum(0).cpu()  # (top,)
        filled = real.double().sum(0).cumsum(0).cpu()  # (top,)
        cols_k = torch.tensor([min(k, top) - 1 for k in ks])
        found += hit[cols_k]
        slots += filled[cols_k]
    return {
        k: (f / s).item() if s > 0 else 0.0
        for k, f, s in zip(ks, found, slots, strict=True)
    }


def cold_start_metrics(
    score: Callable[[Tensor], Tensor],
    num_items: int,
    train_indptr: Tensor,
    train_indices: Tensor,
    test_indptr: Tensor,
    test_indices: Tensor,
    cold: Tensor,
    ks: Sequence[int],
    *,
    chunk_size: int = 2048,
) -> dict[str, float]:
    """recall/NDCG@K on cold and on warm held-out interactions, and cold top-K share.

    Args:
        score: users (C,) int64 -> their scores for every item (C, I), as
            `scored_ranking_metrics` takes it: the model's dot products or a
            baseline's.
        num_items: catalogue size I (cold items included).
        train_indptr: CSR offsets of each user's training items.
        train_indices: training items, CSR order.
        test_indptr: CSR offsets of each user's held-out items.
        test_indices: held-out items, CSR order.
        cold: which items are cold (`cold_item_mask`).
        ks: cut-offs K.
        chunk_size: users scored at once.

    Returns:
        ``cold_items`` (cold items in the catalogue), ``cold_test_share`` (share of
        the held-out interactions with a cold item), ``cold_top_share@K`` (share of
        the evaluated users' top-K slots holding a cold item), and for each part
        ``cold_``/``warm_`` + ``users``, ``recall@K``, ``ndcg@K`` (as
        `scored_ranking_metrics`, over the users holding out items of that part),
        and ``cold_only_`` + the same keys: the held-out cold items against a ranking
        of the cold items only.

    Shapes: train_indptr (U+1,), train_indices (E,), test_indptr (U+1,),
        test_indices (E_test,), cold (I,).
    """
    device = train_indices.device
    train = (train_indptr.to(device), train_indices.to(device))
    test_indptr, test_indices = test_indptr.to(device), test_indices.to(device)
    cold = cold.to(device)
    is_cold = cold[test_indices]  # (E_test,)

    def score_cold(users: Tensor) -> Tensor:
        return score(users).masked_fill(~cold, -torch.inf)  # (C, I), warm never ranked

    metrics: dict[str, float] = {
        "cold_items": int(cold.sum()),
        "cold_test_share": is_cold.double().mean().item() if is_cold.numel() else 0.0,
    }
    users = torch.nonzero(test_indptr.diff() > 0).flatten()  # (V,) evaluated users
    shares = top_k_share(
        score, num_items, *train, users, cold, ks, chunk_size=chunk_size
    )
    metrics |= {f"cold_top_share@{k}": share for k, share in shares.items()}
    parts = (("cold", score, is_cold), ("warm", score, ~is_cold))
    for part, scorer, keep in (*parts, ("cold_only", score_cold, is_cold)):
        held = _filter_rows(test_indptr, test_indices, keep)
        scored = scored_ranking_metrics(
            scorer, num_items, *train, *held, ks, chunk_size=chunk_size
        )
        metrics |= {f"{part}_{key}": value for key, value in scored.items()}
    return metrics
