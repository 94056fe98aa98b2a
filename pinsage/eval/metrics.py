"""Ranking metrics: user-to-item recall/NDCG and item-to-item hit-rate/scaled MRR.

Pure, vectorised torch functions: the tensors may live on the CPU or a GPU, and the
work is chunked over users (or queries) so memory stays bounded by
``chunk_size * num_items`` scores.

Shape letters: U users (contexts), I items, D embedding, E training interactions,
E_test held-out interactions, Q queries, C users or queries in one chunk, K cut-off.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "MRR_RANK_SCALE",
    "heldout_item_pairs",
    "item_to_item_metrics",
    "popularity_scorer",
    "popularity_scores",
    "ranking_metrics",
    "scored_ranking_metrics",
]

MRR_RANK_SCALE = 100  # PinSage paper: MRR = mean 1 / ceil(rank / 100)


def _check_ks(ks: Sequence[int]) -> list[int]:
    """Distinct cut-offs in increasing order; ``ValueError`` on an empty or bad list."""
    distinct = sorted({int(k) for k in ks})
    if not distinct or distinct[0] < 1:
        raise ValueError(f"ks must be a non-empty list of integers >= 1, got {ks!r}")
    return distinct


def _csr_rows(indptr: Tensor, indices: Tensor, rows: Tensor) -> tuple[Tensor, Tensor]:
    """The entries of some CSR rows as flat (position in ``rows``, column) pairs.

    Shapes: indptr (R+1,), indices (E,), rows (C,) -> (pos (M,), cols (M,)), where M
    is the total length of the selected rows.
    """
    starts = indptr[rows]  # (C,)
    lengths = indptr[rows + 1] - starts  # (C,)
    pos = torch.repeat_interleave(
        torch.arange(rows.numel(), device=rows.device), lengths
    )
    # Offset of each entry inside its row: global counter minus the row's first slot.
    first = torch.cumsum(lengths, 0) - lengths  # (C,)
    within = torch.arange(pos.numel(), device=rows.device) - first[pos]  # (M,)
    return pos, indices[starts[pos] + within]


def _per_row(indptr: Tensor) -> Tensor:
    """Row index of every CSR entry. Shapes: indptr (R+1,) -> (E,) int64."""
    num_rows = indptr.numel() - 1
    return torch.repeat_interleave(
        torch.arange(num_rows, device=indptr.device), indptr[1:] - indptr[:-1]
    )


def _discounts(length: int, device: torch.device) -> Tensor:
    """DCG position discounts 1 / log2(p + 2), p = 0..length-1. Shapes: -> (length,)."""
    positions = torch.arange(length, device=device, dtype=torch.float64)
    return 1.0 / torch.log2(positions + 2.0)


def ranking_metrics(
    user_emb: Tensor,
    item_emb: Tensor,
    train_indptr: Tensor,
    train_indices: Tensor,
    test_indptr: Tensor,
    test_indices: Tensor,
    ks: Sequence[int],
    *,
    chunk_size: int = 2048,
) -> dict[str, float]:
    """User-to-item recall@K and NDCG@K of dot products (`scored_ranking_metrics`).

    Args:
        user_emb: user (context) vectors.
        item_emb: item vectors.
        train_indptr: CSR offsets of each user's training items.
        train_indices: training items, CSR order.
        test_indptr: CSR offsets of each user's held-out items.
        test_indices: held-out items, CSR order.
        ks: cut-offs K (duplicates ignored).
        chunk_size: users scored at once; memory is about ``chunk_size * I`` scores.

    Shapes: user_emb (U, D), item_emb (I, D), train_indptr (U+1,),
        train_indices (E,), test_indptr (U+1,), test_indices (E_test,).
    """
    return scored_ranking_metrics(
        lambda users: user_emb[users] @ item_emb.t(),
        item_emb.shape[0],
        train_indptr.to(user_emb.device),
        train_indices.to(user_emb.device),
        test_indptr.to(user_emb.device),
        test_indices.to(user_emb.device),
        ks,
        chunk_size=chunk_size,
    )


def scored_ranking_metrics(
    score: Callable[[Tensor], Tensor],
    num_items: int,
    train_indptr: Tensor,
    train_indices: Tensor,
    test_indptr: Tensor,
    test_indices: Tensor,
    ks: Sequence[int],
    *,
    chunk_size: int = 2048,
) -> dict[str, float]:
    """User-to-item recall@K and NDCG@K with full ranking (LightGCN protocol).

    Every user with at least one held-out item scores all items with ``score``; the
    user's training items are excluded; the top ``max(ks)`` remaining items are
    compared with the user's held-out items (a set: repeated held-out items count
    once). recall@K = hits in the top K / number of held-out items; NDCG@K =
    DCG@K / IDCG@K with binary relevance, DCG@K = sum over hit positions p (0-based)
    of 1 / log2(p + 2), IDCG@K the same over the first min(#held-out, K) positions.
    Both are averaged over the evaluated users. Ties in score are broken by
    ``torch.topk``; a held-out item that is also a training item is never a hit.

    Any scorer fits: the model's dot products, or a training-free baseline's
    (`pinsage.eval.baselines`), so both are measured by one protocol.

    Args:
        score: users (C,) int64 -> their scores for every item (C, I), any float
            dtype, on the device of ``train_indices``.
        num_items: catalogue size I.
        train_indptr: CSR offsets of each user's training items.
        train_indices: training items, CSR order.
        test_indptr: CSR offsets of each user's held-out items.
        test_indices: held-out items, CSR order.
        ks: cut-offs K (duplicates ignored).
        chunk_size: users scored at once; memory is about ``chunk_size * I`` scores.

    Returns:
        ``recall@K`` and ``ndcg@K`` for each K, and ``users`` (the number evaluated);
        metrics are 0.0 when no user has a held-out item.

    Shapes: train_indptr (U+1,), train_indices (E,), test_indptr (U+1,),
        test_indices (E_test,).
    """
    ks = _check_ks(ks)
    device = train_indices.device
    train_indptr = train_indptr.to(device, torch.int64)
    train_indices = train_indices.to(device, torch.int64)
    test_keys, num_test = _held_out(test_indptr, test_indices, num_items, device)
    users = torch.nonzero(num_test > 0).flatten()  # (V,) evaluated users
    cutoffs = _Cutoffs.of(ks, num_items, device)
    recall = torch.zeros(users.numel(), len(ks), dtype=torch.float64, device=device)
    ndcg = torch.zeros_like(recall)  # (V, nK)
    for start in range(0, users.numel(), chunk_size):
        batch = users[start : start + chunk_size]  # (C,)
        scores = score(batch)  # (C, I)
        pos, cols = _csr_rows(train_indptr, train_indices, batch)
        scores.index_put_((pos, cols), scores.new_tensor(float("-inf")))
        hits = _top_hits(scores, batch, test_keys, cutoffs.top)  # (C, top)
        stop = start + batch.numel()
        recall[start:stop], ndcg[start:stop] = cutoffs.score(hits, num_test[batch])
    num_eval = max(users.numel(), 1)
    mean_recall = (recall.sum(0) / num_eval).tolist()
    mean_ndcg = (ndcg.sum(0) / num_eval).tolist()
    metrics: dict[str, float] = {"users": users.numel()}
    for k, r, n in zip(ks, mean_recall, mean_ndcg, strict=True):
        metrics[f"recall@{k}"] = r
        metrics[f"ndcg@{k}"] = n
    return metrics


def _held_out(
    test_indptr: Tensor, test_indices: Tensor, num_items: int, device: torch.device
) -> tuple[Tensor, Tensor]:
    """Held-out pairs as sorted distinct keys user * I + item; each user's count.

    Shapes: test_indptr (U+1,), test_indices (E_test,) -> (T,) int64, (U,) int64.
    """
    num_users = test_indptr.numel() - 1
    test_indptr = test_indptr.to(device, torch.int64)
    test_keys = torch.unique(
        _per_row(test_indptr) * num_items + test_indices.to(device, torch.int64)
    )
    return test_keys, torch.bincount(test_keys // num_items, minlength=num_users)


@dataclass(frozen=True)
class _Cutoffs:
    """The cut-offs K of one evaluation, and the discounts that score hits at them."""

    top: int  # items ranked per user: min(max K, I)
    columns: Tensor  # (nK,) the hit column of each K (K - 1, at most top - 1)
    ks: Tensor  # (nK,)
    discounts: Tensor  # (Kmax,) 1 / log2(p + 2)
    ideal_dcg: Tensor  # (Kmax,) IDCG for 1..Kmax relevant items

    @classmethod
    def of(cls, ks: list[int], num_items: int, device: torch.device) -> _Cutoffs:
        top = min(ks[-1], num_items)
        discounts = _discounts(ks[-1], device)
        return cls(
            top=top,
            columns=torch.tensor(ks, device=device).clamp(max=top) - 1,
            ks=torch.tensor(ks, device=device),
            discounts=discounts,
            ideal_dcg=torch.cumsum(discounts, 0),
        )

    def score(self, hits: Tensor, relevant: Tensor) -> tuple[Tensor, Tensor]:
        """recall@K and NDCG@K of each user from its top items' hits.

        Shapes: hits (C, top) bool or float, relevant (C,) >= 1 -> (C, nK) twice.
        """
        hit_count = torch.cumsum(hits, 1, dtype=torch.float64)  # (C, top)
        dcg = torch.cumsum(hits * self.discounts[: self.top], 1)  # (C, top)
        ideal = self.ideal_dcg[torch.minimum(relevant[:, None], self.ks) - 1]
        recall = hit_count[:, self.columns] / relevant[:, None]
        return recall, dcg[:, self.columns] / ideal


def _top_hits(scores: Tensor, users: Tensor, test_keys: Tensor, top: int) -> Tensor:
    """Whether each of a chunk's top-scored items is held out for its user.

    ``scores`` holds -inf at excluded items, which are never hits; ``test_keys`` are
    the sorted keys user * I + item of all held-out pairs.
    Shapes: scores (C, I), users (C,), test_keys (T,) -> (C, top) bool, best first.
    """
    values, top_items = torch.topk(scores, top, dim=1)  # (C, top)
    keys = users[:, None] * scores.shape[1] + top_items  # (C, top)
    found = torch.searchsorted(test_keys, keys).clamp(max=test_keys.numel() - 1)
    return (test_keys[found] == keys) & (values > float("-inf"))


def item_to_item_metrics(
    query_emb: Tensor,
    target: Tensor,
    item_emb: Tensor,
    ks: Sequence[int],
    *,
    query_items: Tensor | None = None,
    chunk_size: int = 2048,
) -> dict[str, float]:
    """Item-to-item hit-rate@K and the PinSage paper's scaled MRR.

    Each query scores every item by dot product; the target's 1-based rank is
    1 + the number of other items scoring at least as high as the target (ties
    counted pessimistically, so a collapsed embedding cannot score well). The query's
    own item (``query_items``) takes no part in the ranking unless it is the target.
    hit_rate@K = mean(rank <= K); mrr = mean(1 / ceil(rank / 100)) (Ying et al.,
    2018, rank among the whole catalogue).

    Args:
        query_emb: query vectors.
        target: item index each query should retrieve.
        item_emb: item vectors, the catalogue.
        ks: cut-offs K (duplicates ignored).
        query_items: each query's own item index, excluded from its ranking.
        chunk_size: queries scored at once; memory is about ``chunk_size * I`` scores.

    Returns:
        ``hit_rate@K`` for each K, ``mrr`` and ``pairs`` (the number of queries);
        metrics are 0.0 without queries.

    Shapes: query_emb (Q, D), target (Q,) int64, item_emb (I, D),
        query_items (Q,) int64.
    """
    ranks = _target_ranks(
        query_emb, target, item_emb, query_items=query_items, chunk_size=chunk_size
    )  # (Q,)
    num_pairs = max(ranks.numel(), 1)
    metrics: dict[str, float] = {"pairs": ranks.numel()}
    for k in _check_ks(ks):
        metrics[f"hit_rate@{k}"] = (ranks <= k).sum().item() / num_pairs
    scaled = torch.ceil(ranks.double() / MRR_RANK_SCALE)  # (Q,)
    metrics["mrr"] = ((1.0 / scaled).sum() / num_pairs).item()
    return metrics


def _target_ranks(
    query_emb: Tensor,
    target: Tensor,
    item_emb: Tensor,
    *,
    query_items: Tensor | None,
    chunk_size: int,
) -> Tensor:
    """1-based pessimistic rank of each target; see `item_to_item_metrics`.

    Shapes: query_emb (Q, D), target (Q,), item_emb (I, D), query_items (Q,) -> (Q,).
    """
    device = query_emb.device
    target = target.to(device, torch.int64)
    if query_items is not None:
        query_items = query_items.to(device, torch.int64)
    ranks = torch.empty(target.numel(), dtype=torch.int64, device=device)
    item_t = item_emb.t()  # (D, I)
    # Counting in place in the score dtype is ~10x faster than a bool reduction on
    # CPU; it is exact while every count up to I is representable in that dtype.
    num_items = item_emb.shape[0]
    dtype = torch.promote_types(query_emb.dtype, item_emb.dtype)
    exact_in_place = dtype.is_floating_point and (
        num_items <= 2 / torch.finfo(dtype).eps  # 2**24 for float32
    )
    for start in range(0, target.numel(), chunk_size):
        stop = start + chunk_size
        scores = query_emb[start:stop] @ item_t  # (C, I)
        tgt = target[start:stop, None]  # (C, 1)
        target_score = scores.gather(1, tgt)  # (C, 1)
        if query_items is not None:
            own = query_items[start:stop, None]  # (C, 1)
            own_score = scores.gather(1, own)  # kept when the query is the target
            dropped = torch.where(own == tgt, own_score, float("-inf"))  # (C, 1)
            scores.scatter_(1, own, dropped)
        # Items at least as high as the target, itself included: the best rank is 1.
        if exact_in_place:
            ranks[start:stop] = scores.ge_(target_score).sum(1).long()
        else:
            ranks[start:stop] = (scores >= target_score).sum(1)
    return ranks


def popularity_scores(train_indices: Tensor, num_items: int) -> Tensor:
    """Item popularity: the number of training interactions of each item.

    Shapes: train_indices (E,) -> (I,) float32, on ``train_indices``' device.
    """
    counts = torch.bincount(train_indices.to(torch.int64), minlength=num_items)
    return counts.to(torch.float32)


def popularity_scorer(
    train_indices: Tensor, num_items: int
) -> Callable[[Tensor], Tensor]:
    """The most-popular baseline as a scorer: every user ranks by popularity.

    Every user gets the same scores: an item's popularity less ``index / I`` so that
    equally popular items rank by lower index (a deterministic tie-break that never
    reorders different counts). Scores are float64 so the tie-break stays exact.

    Shapes: train_indices (E,) -> a scorer mapping users (C,) to (C, I) float64, on
        ``train_indices``' device.
    """
    order = torch.arange(num_items, device=train_indices.device, dtype=torch.float64)
    scores = popularity_scores(train_indices, num_items).double() - order / num_items

    def score(users: Tensor) -> Tensor:
        return scores.expand(users.numel(), num_items).clone()  # (C, I)

    return score


def heldout_item_pairs(
    train_indptr: Tensor,
    train_indices: Tensor,
    test_indptr: Tensor,
    test_indices: Tensor,
    *,
    generator: torch.Generator,
) -> tuple[Tensor, Tensor]:
    """Item-to-item evaluation pairs from held-out interactions.

    For each held-out interaction (u, i), in CSR order, the query is one of u's
    training items drawn uniformly with ``generator`` and the target is i. Users
    without training items are skipped. One uniform draw is taken per held-out
    interaction, skipped or not, so the result depends only on the arguments and
    the generator's state. A query equals its target only when the held-out
    interaction repeats a training one.

    Args:
        train_indptr: CSR offsets of each user's training items.
        train_indices: training items, CSR order.
        test_indptr: CSR offsets of each user's held-out items.
        test_indices: held-out items, CSR order.
        generator: source of the draws (its device is where they are drawn).

    Returns:
        ``(queries, targets)``, int64 item indices on ``train_indices``' device.

    Shapes: train_indptr (U+1,), train_indices (E,), test_indptr (U+1,),
        test_indices (E_test,) -> ((P,), (P,)), P <= E_test.
    """
    device = train_indices.device
    train_indptr = train_indptr.to(device, torch.int64)
    test_users = _per_row(test_indptr.to(device, torch.int64))  # (E_test,)
    draws = torch.rand(
        test_users.numel(),
        generator=generator,
        dtype=torch.float64,
        device=generator.device,
    ).to(device)  # (E_test,)
    starts = train_indptr[test_users]  # (E_test,)
    degree = train_indptr[test_users + 1] - starts  # (E_test,)
    offset = torch.minimum((draws * degree).long(), degree - 1)  # (E_test,)
    keep = degree > 0
    queries = train_indices[(starts + offset)[keep]].to(torch.int64)
    targets = test_indices.to(device, torch.int64)[keep]
    return queries, targets
