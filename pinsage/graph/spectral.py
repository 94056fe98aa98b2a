r"""The graph as a sparse matrix, normalised, and its leading singular vectors.

Shared by the training-free baselines (`pinsage.eval.baselines`) and the spectral
initialisation of the item ID embeddings (`pinsage.run.factory`). R is the binary
user x item matrix (a repeated interaction counts once) and
:math:`\tilde R = D_U^{-1/2} R D_I^{-1/2}` its symmetric normalisation, the matrix
whose item-item Gram :math:`\tilde R^\top \tilde R` LightGCN and GF-CF smooth with.

Shape letters: U users (contexts), I items, k singular vectors.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds
from torch import Tensor

__all__ = [
    "interaction_matrix",
    "inverse_sqrt",
    "normalized_interactions",
    "top_right_singular",
]

log = logging.getLogger(__name__)


def interaction_matrix(indptr: Tensor, indices: Tensor, num_items: int) -> sp.csr_array:
    """The binary training matrix R from a user -> items CSR.

    Shapes: indptr (U+1,), indices (E,) -> (U, I) float64, entries 0/1.
    """
    num_users = indptr.numel() - 1
    r = sp.csr_array(
        (np.ones(indices.numel()), indices.long().numpy(), indptr.numpy()),
        shape=(num_users, num_items),
    )
    r.sum_duplicates()
    r.data[:] = 1.0  # a repeated interaction counts once
    return r


def inverse_sqrt(degrees: np.ndarray) -> np.ndarray:
    """d^-1/2, and 0 where d = 0 (an isolated node contributes nothing)."""
    out = np.zeros(degrees.shape, dtype=np.float64)
    np.divide(1.0, np.sqrt(degrees), out=out, where=degrees > 0)
    return out


def normalized_interactions(r: sp.csr_array) -> sp.csr_array:
    """R~ = D_U^-1/2 R D_I^-1/2. Shapes: r (U, I) -> (U, I)."""
    d_users = inverse_sqrt(np.asarray(r.sum(axis=1)).ravel())
    d_items = inverse_sqrt(np.asarray(r.sum(axis=0)).ravel())
    return (sp.diags_array(d_users) @ r @ sp.diags_array(d_items)).tocsr()


def top_right_singular(
    matrix: sp.csr_array, k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` largest singular values and right singular vectors (ARPACK).

    The start vector comes from ``seed``, so the result is repeatable; ``k`` is
    capped at min(shape) - 1, ARPACK's limit. Shapes: (U, I) -> (k,), (k, I).
    """
    k = min(k, min(matrix.shape) - 1)
    t0 = time.perf_counter()
    v0 = np.random.default_rng(seed).standard_normal(min(matrix.shape))
    _, values, vt = svds(matrix, k=k, v0=v0)
    log.info("top %d singular vectors in %.1fs", k, time.perf_counter() - t0)
    return values, vt
