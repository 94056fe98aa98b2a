r"""Training-free baselines, ranked by the model's protocol (`scored_ranking_metrics`).

Every evaluation can put the GNN beside what a user would otherwise deploy:

- ``popularity``: every user gets the most-engaged items.
- ``itemknn``: cosine item-kNN over every neighbour, :math:`s_u = r_u S`,
  :math:`S = D_I^{-1/2} R^\top R D_I^{-1/2}` (S's diagonal only scores the user's
  own items, which are excluded anyway). Keeping each item's 100 nearest instead
  scored lower on Gowalla (recall@20 0.116 against 0.127).
- ``gfcf``: GF-CF (Shen et al., CIKM 2021), a closed-form graph filter:
  :math:`\tilde R = D_U^{-1/2} R D_I^{-1/2}`,
  :math:`s_u = r_u \tilde R^\top \tilde R + 0.3\, r_u D_I^{-1/2} V_k V_k^\top
  D_I^{1/2}` with :math:`V_k` the top k = 256 right singular vectors of
  :math:`\tilde R` (its published Gowalla figure, 0.1849 recall@20, is ours too).
- ``content`` (graphs with item features): content-based item-kNN,
  :math:`s_u = r_u X X^\top`, X the items' feature rows (`content_features`): the
  usual cold-start baseline, since a new item's row is as full as an old one's.

With cold items in the test file (no training interaction), each baseline also
reports `cold_start_metrics`, so the model's cold figures have a reference: only
``content`` can place a new item, the others give it no score.

R is the binary user x item training matrix (a repeated interaction counts once).
Scores are computed for a chunk of users at a time with sparse products (scipy), so
memory stays at a few ``chunk x (U + I)`` dense blocks and no item x item matrix is
ever dense.

Shape letters: U users (contexts), I items, C users in one chunk, k singular vectors.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from pinsage.config import BASELINES
from pinsage.eval.cold import cold_start_metrics
from pinsage.eval.metrics import popularity_scorer, scored_ranking_metrics
from pinsage.features.store import FeatureStore
from pinsage.graph.spectral import (
    interaction_matrix,
    inverse_sqrt,
    normalized_interactions,
    top_right_singular,
)

__all__ = [
    "BASELINES",
    "GFCF_IDEAL_WEIGHT",
    "GFCF_RANK",
    "baseline_metrics",
    "content_features",
    "content_scorer",
    "gfcf_scorer",
    "itemknn_scorer",
]

log = logging.getLogger(__name__)

GFCF_RANK = 256  # k: the paper's ideal low-pass filter on Gowalla, Yelp and Amazon
GFCF_IDEAL_WEIGHT = 0.3  # alpha of the ideal low-pass term (the paper's setting)

Scorer = Callable[[Tensor], Tensor]  # users (C,) -> scores (C, I) float32


def _two_hop(r: sp.csr_array, left: sp.csr_array, rows: np.ndarray) -> np.ndarray:
    """``rows`` of R @ left^T @ left, as dense scores.

    ``left`` (U, I) is the filter's user-item matrix; the product goes through users:
    (left @ r_rows^T) is a dense U x C block, then left^T maps it back to items.
    Shapes: r (U, I), left (U, I), rows (C,) -> (C, I) float64.
    """
    via_users = (left @ r[rows].T).toarray()  # (U, C)
    return (left.T @ via_users).T  # (C, I)


def itemknn_scorer(r: sp.csr_array) -> Scorer:
    """Cosine item-kNN scores (module docstring). Shapes: r (U, I) -> Scorer."""
    d_items = inverse_sqrt(np.asarray(r.sum(axis=0)).ravel())  # (I,)
    left = (r @ sp.diags_array(d_items)).tocsr()  # R D_I^-1/2

    def score(users: Tensor) -> Tensor:
        dense = _two_hop(r, left, users.numpy())  # (C, I)
        return torch.from_numpy(dense).float()

    return score


def gfcf_scorer(
    r: sp.csr_array,
    rank: int = GFCF_RANK,
    ideal_weight: float = GFCF_IDEAL_WEIGHT,
    seed: int = 0,
) -> Scorer:
    """GF-CF scores (module docstring); the SVD is seeded, so scores are repeatable.

    ``rank`` is capped at min(U, I) - 1 (ARPACK's limit) for small graphs.
    Shapes: r (U, I) -> Scorer.
    """
    d_items_raw = np.asarray(r.sum(axis=0)).ravel()  # (I,)
    d_items = inverse_sqrt(d_items_raw)
    norm = normalized_interactions(r)  # R~
    _, vt = top_right_singular(norm, rank, seed)  # (k, I)
    into = torch.from_numpy(vt.T * d_items[:, None]).float()  # D_I^-1/2 V (I, k)
    back = torch.from_numpy(vt * np.sqrt(d_items_raw)[None, :]).float()  # (k, I)

    def score(users: Tensor) -> Tensor:
        rows = users.numpy()
        linear = torch.from_numpy(_two_hop(r, norm, rows)).float()  # (C, I)
        history = torch.from_numpy(r[rows].toarray()).float()  # (C, I)
        return linear + ideal_weight * ((history @ into) @ back)

    return score


def _bag_rows(values: Tensor, offsets: Tensor, width: int) -> sp.csr_array:
    """A CSR bag column as counts per item. Shapes: -> (I, width) float64."""
    counts = np.ones(values.numel())
    # Copies: sum_duplicates sorts in place, and these arrays share the store's memory.
    arrays = (counts, values.numpy().copy(), offsets.numpy().copy())
    rows = sp.csr_array(arrays, shape=(offsets.numel() - 1, width))
    rows.sum_duplicates()
    return rows


def _unit_rows(block: sp.csr_array) -> sp.csr_array:
    """``block`` with each non-empty row scaled to unit L2 norm."""
    norms = np.sqrt(np.asarray(block.multiply(block).sum(axis=1)).ravel())  # (I,)
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return (sp.diags_array(scale) @ block).tocsr()


def content_features(features: FeatureStore) -> sp.csr_array:
    """X, the items' feature rows for the content baseline.

    Each vector column, each categorical column (a multi-hot row) and each text
    column (hashed-token counts) is a group scaled to unit rows; the groups are put
    side by side and each row made unit again, so X X^T is a cosine in which no
    group wins by size. Dense columns are left out: a cosine over one or two
    standardised numbers (a year, a price) says little more than which side of the
    mean an item lies (on the MovieLens-format files it halved the cold-only
    recall). Shapes: -> (I, F) float64, F the summed group widths.
    """
    groups = [sp.csr_array(v.double().numpy()) for v in features.vectors.values()]
    for spec in features.specs:
        if spec.kind == "categorical":
            groups.append(_bag_rows(*features.categorical[spec.name], spec.dim))
        elif spec.kind == "text":
            groups.append(_bag_rows(*features.text[spec.name], features.text_buckets))
    if not groups:
        raise ValueError(
            "the content baseline needs vector, categorical or text item features"
        )
    return _unit_rows(sp.hstack([_unit_rows(g) for g in groups], format="csr"))


def content_scorer(r: sp.csr_array, x: sp.csr_array) -> Scorer:
    """Content-based item-kNN, s_u = r_u X X^T. Shapes: r (U, I), x (I, F) -> Scorer."""

    def score(users: Tensor) -> Tensor:
        profile = r[users.numpy()] @ x  # (C, F) the user's summed item rows
        return torch.from_numpy(np.asarray((profile @ x.T).todense())).float()  # (C, I)

    return score


def _scorer(
    name: str,
    r: sp.csr_array,
    train_indices: Tensor,
    features: FeatureStore | None,
    seed: int,
) -> Scorer:
    """The named baseline's scorer on training matrix ``r``."""
    if name == "popularity":  # counts every interaction, repeated ones too
        return popularity_scorer(train_indices, r.shape[1])
    if name == "itemknn":
        return itemknn_scorer(r)
    if name == "gfcf":
        return gfcf_scorer(r, seed=seed)
    if features is None:
        raise ValueError("the content baseline needs the graph's FeatureStore")
    return content_scorer(r, content_features(features))


def baseline_metrics(
    names: Sequence[str],
    train_indptr: Tensor,
    train_indices: Tensor,
    test_indptr: Tensor,
    test_indices: Tensor,
    num_items: int,
    ks: Sequence[int],
    *,
    features: FeatureStore | None = None,
    cold: Tensor | None = None,
    seed: int = 0,
    chunk_size: int = 1024,
) -> dict[str, dict[str, float]]:
    """recall@K / NDCG@K of each named baseline, with its ``seconds``.

    Args:
        names: a subset of `BASELINES`, in the order to report them.
        train_indptr: CSR offsets of each user's training items.
        train_indices: training items, CSR order.
        test_indptr: CSR offsets of each user's held-out items.
        test_indices: held-out items, CSR order.
        num_items: catalogue size I.
        ks: cut-offs K.
        features: the graph's item features (``content`` needs them).
        cold: (I,) bool items without training interactions; when given, each
            baseline also reports `cold_start_metrics`.
        seed: GF-CF's SVD starting vector.
        chunk_size: users scored at once.

    Shapes: train_indptr (U+1,), train_indices (E,), test_indptr (U+1,),
        test_indices (E_test,).
    """
    unknown = sorted(set(names) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown baselines {unknown}; choose from {BASELINES}")
    train_indices = train_indices.long()
    r = interaction_matrix(train_indptr, train_indices, num_items)
    train, test = (train_indptr, train_indices), (test_indptr, test_indices)
    results = {}
    for name in names:
        t0 = time.perf_counter()
        scorer = _scorer(name, r, train_indices, features, seed)
        metrics = scored_ranking_metrics(
            scorer, num_items, *train, *test, ks, chunk_size=chunk_size
        )
        if cold is not None:
            metrics |= cold_start_metrics(
                scorer, num_items, *train, *test, cold, ks, chunk_size=chunk_size
            )
        metrics["seconds"] = round(time.perf_counter() - t0, 2)
        log.info("baseline %s: %s", name, metrics)
        results[name] = metrics
    return results
