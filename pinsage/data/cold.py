"""Cold items for imported data: a share of items with features but no training rows.

`data import --cold-items FRACTION` measures cold start on real data as `data synth
--cold-items` does on generated data: the chosen items keep their features (the
items table) and their test interactions, and lose every training interaction, so
the model meets them only through their features, as it meets an item added after
training. With timestamps the items chosen are those that appeared last (latest
first interaction over training and test rows): the new catalogue entries of a live
system. Without timestamps, a seeded random share. Ties break in a seeded order.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pinsage.errors import DataError

__all__ = ["choose_cold_items", "with_cold_items"]

log = logging.getLogger(__name__)


def choose_cold_items(
    first_seen: np.ndarray | None, count: int, fraction: float, seed: int
) -> np.ndarray:
    """Positions of the ``round(fraction * count)`` cold items among ``count``.

    ``first_seen`` (count,): each item's first interaction time, the latest chosen
    first; ``None``: a seeded random choice. Shapes: -> (K,) int64 sorted.
    """
    rng = np.random.default_rng(seed)
    tiebreak = rng.random(count)
    num_cold = int(round(fraction * count))
    if first_seen is None:
        order = np.argsort(tiebreak)
    else:
        order = np.lexsort((tiebreak, -first_seen.astype(np.float64)))
    return np.sort(order[:num_cold])


def _first_seen(tables: list[pa.Table], catalogue: pa.Array) -> np.ndarray | None:
    """Each catalogue item's earliest timestamp over ``tables`` (inf if none)."""
    if not all("timestamp" in t.column_names for t in tables):
        return None
    first = np.full(len(catalogue), np.inf)
    for t in tables:
        rows = pc.index_in(t["item"], value_set=catalogue)
        known = pc.is_valid(rows).to_numpy(zero_copy_only=False)
        where = rows.to_numpy(zero_copy_only=False)[known].astype(np.int64)
        times = t["timestamp"].cast(pa.float64()).to_numpy()[known]
        np.minimum.at(first, where, times)
    return first


def with_cold_items(
    tables: dict[str, pa.Table], fraction: float, seed: int, source: str
) -> tuple[dict[str, pa.Table], int]:
    """``tables`` with a ``fraction`` of the items made cold; (tables, cold items).

    Needs ``items`` (features: a cold item has no other input) and ``test`` (where
    a cold item is measured). Only items with interactions are candidates.
    """
    missing = [n for n in ("items", "test") if n not in tables]
    if missing:
        raise DataError(
            f"{source}: --cold-items needs {' and '.join(missing)} (a cold item is "
            "embedded from its features and measured on test interactions); import "
            "a source with an items file and a test split, or leave --cold-items out."
        )
    train, test = tables["interactions"], tables["test"]
    both = [t["item"].combine_chunks() for t in (train, test)]
    seen = pc.unique(pa.concat_arrays(both))
    catalogue = tables["items"]["item"].combine_chunks()
    candidates = catalogue.filter(pc.is_in(catalogue, value_set=seen))
    chosen = choose_cold_items(
        _first_seen([train, test], candidates), len(candidates), fraction, seed
    )
    cold = candidates.take(pa.array(chosen))
    kept = train.filter(pc.invert(pc.is_in(train["item"], value_set=cold)))
    log.info(
        "%s: %d cold items (no training rows; %d training interactions dropped)",
        source,
        len(cold),
        train.num_rows - kept.num_rows,
    )
    return tables | {"interactions": kept}, len(cold)
