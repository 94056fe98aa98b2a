"""A validation split carved from the training interactions, for honest model selection.

Hyper-parameters, early stopping and the choice of checkpoint look at validation
interactions, never at the test file: a share of each user's training interactions
is held out (``fit.parquet`` keeps the rest, ``validation.parquet`` the held ones).
With a ``timestamp`` column a user's latest interactions are held (as a temporal test
split holds the latest); without one a seeded random choice. Each user keeps at least
one interaction and so does each item, so a graph built from ``fit.parquet`` has the
same users and items, in the same order, as one built from all of them: a model
trained on it embeds the full graph's nodes unchanged (PinSage is inductive), which
is how the test figure and the served vectors see every training interaction.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pinsage.atomic import file_sha256
from pinsage.data.contract import (
    InteractionColumns,
    iter_interactions,
    open_parquet,
)
from pinsage.data.folder import is_current, write_data_folder
from pinsage.errors import DataError

__all__ = ["held_out_rows", "split_table", "split_validation", "write_test_split"]

log = logging.getLogger(__name__)


def _codes(column: pa.ChunkedArray) -> np.ndarray:
    """Dense integer codes of an id column. Shapes: (R,) -> (R,) int64."""
    encoded = pc.dictionary_encode(column).combine_chunks()
    return encoded.indices.to_numpy().astype(np.int64)


def held_out_rows(
    users: np.ndarray, items: np.ndarray, order_key: np.ndarray, share: float, seed: int
) -> np.ndarray:
    """Which interactions to hold out: about ``share`` of each user's.

    A user holds floor(share * n + u) of its n interactions (u ~ U(0, 1): light users
    are held from in proportion), at most n - 1, those first by ``order_key``
    (ascending); then any item left with no kept interaction gets one back.
    Shapes: users (R,), items (R,) int64 codes, order_key (R,) -> (R,) bool.
    """
    rng = np.random.default_rng(seed)
    num_users = int(users.max()) + 1 if users.size else 0
    per_user = np.bincount(users, minlength=num_users)
    quota = np.floor(share * per_user + rng.random(num_users)).astype(np.int64)
    quota = np.minimum(quota, per_user - 1)
    order = np.lexsort((rng.random(users.size), order_key, users))  # by user, key
    starts = np.concatenate([[0], np.cumsum(per_user)[:-1]])
    rank = np.empty(users.size, dtype=np.int64)
    rank[order] = np.arange(users.size) - starts[users[order]]
    held = rank < quota[users]
    num_items = int(items.max()) + 1 if items.size else 0
    kept = np.bincount(items[~held], minlength=num_items)
    orphaned = held & (kept[items] == 0)
    _, first = np.unique(items[orphaned], return_index=True)
    held[np.flatnonzero(orphaned)[first]] = False
    return held


def split_validation(
    interactions: Path,
    out: Path,
    share: float,
    seed: int,
    columns: InteractionColumns | None = None,
) -> Path:
    """Write ``out/fit.parquet`` and ``out/validation.parquet``; skip if up to date.

    Returns ``out``. `DataError` when no interaction can be held out (every user
    has a single one).
    """
    interactions, out = Path(interactions), Path(out)
    columns = columns or InteractionColumns()
    params = {
        "source": file_sha256(interactions),
        "share": share,
        "seed": seed,
    }
    if is_current(out, params):
        log.info("validation split %s is up to date; nothing to do", out)
        return out
    table = open_parquet(interactions, "interactions").read()
    kept, held = split_table(table, share, seed, columns)
    if held.num_rows == 0:
        raise DataError(
            f"{interactions}: no interaction can be held out for validation (each "
            "user needs two or more); set data.validation_share to 0 to train "
            "without a validation split."
        )
    write_data_folder(out, {"fit": kept, "validation": held}, params)
    return out


def split_table(
    table: pa.Table, share: float, seed: int, columns: InteractionColumns
) -> tuple[pa.Table, pa.Table]:
    """(kept, held) rows: about ``share`` of each user's held (`held_out_rows`).

    With a timestamp column a user's latest are held, else a seeded random share.
    """
    users, items = _codes(table[columns.user]), _codes(table[columns.item])
    if columns.timestamp in table.column_names:  # the latest first, as a test split
        key = -table[columns.timestamp].cast(pa.int64()).to_numpy()
    else:  # a seeded random order (held_out_rows breaks every tie at random)
        key = np.zeros(table.num_rows)
    mask = pa.array(held_out_rows(users, items, key, share, seed))
    return table.filter(pc.invert(mask)), table.filter(mask)


def write_test_split(
    src: Path, folder: Path, share: float, seed: int, columns: InteractionColumns
) -> tuple[int, int]:
    """Split ``src`` into ``folder/{interactions,test}.parquet`` for a test split.

    ``src`` is validated as interactions first (`iter_interactions`); both files
    get the data contract's column names. About ``share`` of each user's rows are
    held out (`split_table`). Returns (kept rows, held rows).
    """
    for _ in iter_interactions(src, columns):  # raises DataError on bad rows
        pass
    rename = columns.to_contract(open_parquet(src, "interactions").schema_arrow.names)
    table = pq.read_table(src, columns=list(rename)).rename_columns(
        list(rename.values())
    )
    kept, held = split_table(table, share, seed, InteractionColumns())
    pq.write_table(kept, folder / "interactions.parquet")
    pq.write_table(held, folder / "test.parquet")
    return kept.num_rows, held.num_rows
