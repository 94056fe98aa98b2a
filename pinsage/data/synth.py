"""Synthetic interaction data with planted structure and a known ground truth.

C clusters: every item and every user belongs to one. A user's interactions fall inside
its cluster with probability ``in_cluster`` and otherwise anywhere; items are drawn by a
Zipf-like popularity (``zipf`` exponent) within the chosen cluster or catalogue. With
``interests`` > 1 a user has that many clusters (its own first) and each in-cluster
draw picks one of them; with ``subclusters`` > 1 each cluster is cut into that many
sub-clusters, a user prefers one in each of its clusters, and an in-cluster draw
stays inside the preferred one with probability ``in_subcluster``. Item
features are correlated with the cluster: a dense vector (cluster centroid + noise), a
categorical (the cluster's category, sometimes a random one) and a short text (words
from the cluster's vocabulary mixed with common words). Each user's interactions are
split into train and a held-out ``test`` share. A ``cold_items`` share of the items is
cold: their training interactions are dropped (their test ones kept, their features
too), so they stand for items that arrived after training. Everything is vectorised
numpy driven by one seeded Generator: the same parameters give the same files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pinsage.config import SynthConfig
from pinsage.data.folder import is_current, write_data_folder

__all__ = ["SynthConfig", "synthesize", "synthesize_tables"]

log = logging.getLogger(__name__)

# Rounds of drawing before settling for fewer distinct pairs than asked for.
_MAX_DRAW_ROUNDS = 8
_COMMON_WORDS = np.array(
    "the a new best classic great small big red blue green old modern simple".split()
)


def _popularity(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    ranks = rng.permutation(n) + 1
    p = ranks.astype(np.float64) ** -exponent
    return p / p.sum()


def _draw_items(
    rng: np.random.Generator,
    clusters: np.ndarray,
    item_cluster: np.ndarray,
    popularity: np.ndarray,
    num_clusters: int,
) -> np.ndarray:
    """Draw one item per entry of ``clusters`` by popularity within that cluster."""
    by_cluster = np.argsort(item_cluster, kind="stable")
    cum = np.cumsum(popularity[by_cluster])
    bounds = np.searchsorted(item_cluster[by_cluster], np.arange(num_clusters + 1))
    lo = np.where(bounds[:-1] > 0, cum[np.maximum(bounds[:-1] - 1, 0)], 0.0)
    hi = cum[bounds[1:] - 1]
    target = lo[clusters] + rng.random(len(clusters)) * (hi[clusters] - lo[clusters])
    pos = np.searchsorted(cum, target, side="right")
    pos = np.clip(pos, bounds[clusters], bounds[clusters + 1] - 1)
    return by_cluster[pos]


def _sorted_distinct(values: np.ndarray) -> np.ndarray:
    # Sort + run mask: several times faster than np.unique's hash path at 10M rows.
    values = np.sort(values)
    return values[np.r_[True, values[1:] != values[:-1]]]


def _split_test(
    rng: np.random.Generator, users: np.ndarray, fraction: float
) -> np.ndarray:
    """Boolean test mask.

    A random ``fraction`` of each user's rows (floor) is test, the rest train.
    """
    perm = rng.permutation(len(users))
    order = perm[np.argsort(users[perm], kind="stable")]  # by user, random within
    counts = np.bincount(users)
    starts = np.cumsum(counts) - counts
    sorted_users = users[order]
    rank = np.arange(len(users)) - starts[sorted_users]
    test = np.zeros(len(users), dtype=bool)
    test[order] = rank < np.floor(counts[sorted_users] * fraction)
    return test


def _cold_items(rng: np.random.Generator, cfg: SynthConfig) -> np.ndarray:
    """Which items are cold (``cfg.cold_items`` of them, at random). Shapes: -> (I,).

    Drawn only when asked for, so folders without cold items stay as they were.
    """
    cold = np.zeros(cfg.num_items, dtype=bool)
    if cfg.cold_items > 0:
        num_cold = round(cfg.cold_items * cfg.num_items)
        cold[rng.permutation(cfg.num_items)[:num_cold]] = True
    return cold


def _ids(rng: np.random.Generator, n: int, prefix: str, as_string: bool) -> pa.Array:
    # Shuffled, non-contiguous ids so that nothing downstream can rely on id == index.
    ids = rng.permutation(n).astype(np.int64) * 3 + 7
    if as_string:
        return pc.binary_join_element_wise(prefix, pa.array(ids).cast(pa.string()), "")
    return pa.array(ids)


def _item_table(
    rng: np.random.Generator, cfg: SynthConfig, item_cluster: np.ndarray, ids: pa.Array
) -> pa.Table:
    n, c = cfg.num_items, cfg.num_clusters
    centroids = rng.normal(size=(c, cfg.feature_dim)).astype(np.float32) * 2.0
    dense = centroids[item_cluster] + rng.normal(
        scale=cfg.feature_noise, size=(n, cfg.feature_dim)
    ).astype(np.float32)
    category = np.where(rng.random(n) < 0.8, item_cluster, rng.integers(c, size=n))
    words_per_cluster = 5
    cluster_words = np.array(
        [f"w{k}_{j}" for k in range(c) for j in range(words_per_cluster)]
    )
    num_words = 4
    own = item_cluster[:, None] * words_per_cluster + rng.integers(
        words_per_cluster, size=(n, num_words)
    )
    common = rng.choice(_COMMON_WORDS, size=(n, num_words))
    words = np.where(rng.random((n, num_words)) < 0.6, cluster_words[own], common)
    text = pc.binary_join_element_wise(
        *[pa.array(words[:, j]) for j in range(num_words)], " "
    )
    return pa.table(
        {
            "item": ids,
            "embedding": pa.FixedSizeListArray.from_arrays(
                pa.array(dense.ravel()), cfg.feature_dim
            ).cast(pa.list_(pa.float32())),
            "category": pa.array([f"cat{k}" for k in range(c)]).take(
                pa.array(category)
            ),
            "title": text,
            "price": pa.array(rng.lognormal(3.0, 0.5, size=n).astype(np.float32)),
        }
    )


class _Tastes:
    """The planted structure: who belongs where (see the module docstring).

    Shapes: item_cluster, item_sub (I,); user_clusters, user_sub (U, interests);
    popularity (I,); activity (U,). Extra structure is drawn only when asked for, so
    a default config gives the same files as before it existed.
    """

    def __init__(self, rng: np.random.Generator, cfg: SynthConfig) -> None:
        c, s = cfg.num_clusters, cfg.subclusters
        self.cfg = cfg
        self.item_cluster = rng.integers(c, size=cfg.num_items)
        # No empty cluster, nor sub-cluster: the first c x s items cover them all.
        self.item_cluster[: c * s] = np.arange(c * s) // s
        user_cluster = rng.integers(c, size=cfg.num_users)
        user_cluster[:c] = np.arange(c)
        self.popularity = _popularity(rng, cfg.num_items, cfg.zipf)
        self.activity = rng.lognormal(0.0, 1.0, size=cfg.num_users)
        self.activity /= self.activity.sum()
        self.user_clusters = user_cluster[:, None]  # (U, 1)
        if cfg.interests > 1:  # the others: distinct from the own and each other
            shift = np.argsort(rng.random((cfg.num_users, c - 1)), axis=1)
            others = (user_cluster[:, None] + 1 + shift[:, : cfg.interests - 1]) % c
            self.user_clusters = np.concatenate([self.user_clusters, others], axis=1)
        self.item_sub = np.zeros(cfg.num_items, dtype=np.int64)
        self.user_sub = np.zeros_like(self.user_clusters)
        if s > 1:
            self.item_sub = rng.integers(s, size=cfg.num_items)
            self.item_sub[: c * s] = np.arange(c * s) % s
            self.user_sub = rng.integers(s, size=self.user_clusters.shape)

    def draw(self, rng: np.random.Generator, users: np.ndarray) -> np.ndarray:
        """One item for each entry of ``users``. Shapes: (D,) -> (D,)."""
        cfg, n = self.cfg, len(users)
        inside = rng.random(n) < cfg.in_cluster
        which = np.zeros(n, dtype=np.int64)
        if cfg.interests > 1:
            which = rng.integers(cfg.interests, size=n)
        clusters = np.where(
            inside,
            self.user_clusters[users, which],
            rng.integers(cfg.num_clusters, size=n),
        )
        items = _draw_items(
            rng, clusters, self.item_cluster, self.popularity, cfg.num_clusters
        )
        if cfg.subclusters > 1:
            s = cfg.subclusters
            focused = inside & (rng.random(n) < cfg.in_subcluster)
            preferred = self.user_sub[users[focused], which[focused]]
            groups = clusters[focused] * s + preferred
            item_group = self.item_cluster * s + self.item_sub
            items[focused] = _draw_items(
                rng, groups, item_group, self.popularity, cfg.num_clusters * s
            )
        return items


def synthesize_tables(cfg: SynthConfig) -> dict[str, pa.Table]:
    """Generate the tables of a synthetic data folder (see module docstring)."""
    rng = np.random.default_rng(cfg.seed)
    tastes = _Tastes(rng, cfg)
    item_cluster = tastes.item_cluster

    key = np.empty(0, dtype=np.int64)  # distinct user * num_items + item, sorted
    for attempt in range(_MAX_DRAW_ROUNDS):
        # Draw more than missing: popular pairs repeat, and repeats are dropped.
        num_draws = int((cfg.num_edges - len(key)) * 1.3 * 2**attempt) + 16
        per_user = rng.multinomial(num_draws, tastes.activity)
        users = np.repeat(np.arange(cfg.num_users), per_user)
        items = tastes.draw(rng, users)
        key = _sorted_distinct(
            np.concatenate([key, users.astype(np.int64) * cfg.num_items + items])
        )
        if len(key) >= cfg.num_edges:
            break
    else:
        log.warning(
            "synth: only %d distinct pairs after %d rounds", len(key), _MAX_DRAW_ROUNDS
        )
    key = np.sort(rng.choice(key, size=min(cfg.num_edges, len(key)), replace=False))
    users, items = key // cfg.num_items, key % cfg.num_items
    timestamps = np.int64(1_600_000_000) + rng.integers(0, 10**7, size=len(key))

    user_ids = _ids(rng, cfg.num_users, "u", cfg.string_ids)
    item_ids = _ids(rng, cfg.num_items, "i", cfg.string_ids)
    test = _split_test(rng, users, cfg.test_fraction)
    train = ~test & ~_cold_items(rng, cfg)[items]
    inter = pa.table(
        {
            "user": user_ids.take(pa.array(users)),
            "item": item_ids.take(pa.array(items)),
            "timestamp": pa.array(timestamps),
        }
    )
    return {
        "interactions": inter.filter(pa.array(train)),
        "test": inter.filter(pa.array(test)),
        "items": _item_table(rng, cfg, item_cluster, item_ids),
        "item_clusters": pa.table(
            {"item": item_ids, "cluster": pa.array(item_cluster)}
            | ({"subcluster": pa.array(tastes.item_sub)} if cfg.subclusters > 1 else {})
        ),
        "user_clusters": _user_table(cfg, tastes, user_ids),
    }


def _user_table(cfg: SynthConfig, tastes: _Tastes, ids: pa.Array) -> pa.Table:
    """The users' planted tastes as a table.

    Each user's own cluster, and with more structure its ``interests`` (own first)
    and ``preferred_subclusters`` (one per interest).
    """
    columns = {"user": ids, "cluster": pa.array(tastes.user_clusters[:, 0])}
    if cfg.interests > 1 or cfg.subclusters > 1:
        columns["interests"] = pa.array(tastes.user_clusters.tolist())
        columns["preferred_subclusters"] = pa.array(tastes.user_sub.tolist())
    return pa.table(columns)


def synthesize(cfg: SynthConfig, out: Path, *, overwrite: bool = False) -> Path:
    """Write a synthetic data folder to ``out`` (skipped if already complete)."""
    params = {"source": "synth", **asdict(cfg)}
    if is_current(out, params) and not overwrite:
        log.info("%s already holds this synthetic data; nothing to do", out)
        return Path(out)
    t0 = time.perf_counter()
    tables = synthesize_tables(cfg)
    write_data_folder(out, tables, params, overwrite=True)
    log.info("synthesized %s in %.1fs", out, time.perf_counter() - t0)
    return Path(out)
