"""The data contract: what `interactions.parquet` and `items.parquet` must hold.

Files are opened and checked up front (existence, Parquet footer, columns, types), then
read in row groups so an interaction file never has to fit in memory as Python objects.
Every violation raises `DataError` naming the file, the column, what is wrong and how to
fix it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pinsage.errors import DataError

__all__ = [
    "InteractionBatch",
    "InteractionColumns",
    "iter_interactions",
    "open_parquet",
    "read_items",
]

# Rows per streamed batch: large enough that per-batch overhead vanishes, small enough
# that one batch of string ids stays well under 100 MB.
BATCH_ROWS = 1 << 20


@dataclass(frozen=True)
class InteractionColumns:
    """Column names of the interaction table (configurable for foreign files).

    ``items_item`` names the id column of the items file beside it, where that
    differs from the interactions' ``item`` (None: the same name).
    """

    user: str = "user"
    item: str = "item"
    weight: str = "weight"  # optional: absent means every interaction weighs 1
    timestamp: str = "timestamp"  # optional: kept for temporal splits, unused by build
    items_item: str | None = None

    @property
    def catalogue_id(self) -> str:
        """The items file's id column."""
        return self.item if self.items_item is None else self.items_item

    def to_contract(self, names: list[str]) -> dict[str, str]:
        """{source name: contract name} of the interaction columns among ``names``.

        The renaming an importer applies (absent optional columns left out).
        """
        fields = ("user", "item", "weight", "timestamp")
        contract = InteractionColumns()
        return {
            getattr(self, f): getattr(contract, f)
            for f in fields
            if getattr(self, f) in names
        }


class InteractionBatch(NamedTuple):
    """One validated batch of interactions.

    Shapes: user (R,), item (R,) int64 or string Arrow arrays without nulls;
    weight (R,) float32 > 0, or None when the file has no weight column.
    """

    user: pa.Array
    item: pa.Array
    weight: np.ndarray | None


def open_parquet(path: Path, what: str) -> pq.ParquetFile:
    """Open a Parquet file, turning every way it can be unreadable into `DataError`."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{what} file {path} does not exist; check the path.")
    if path.is_dir():
        raise DataError(f"{what} file {path} is a directory; pass a .parquet file.")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(
            f"{what} file {path} is not a readable Parquet file ({exc}); it may be "
            "truncated or in another format: rewrite it with pyarrow or pandas "
            "`to_parquet`."
        ) from exc


def _nearest(name: str, options: list[str]) -> str:
    close = difflib.get_close_matches(name, options, n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _require_column(schema: pa.Schema, path: Path, column: str, role: str) -> None:
    if column not in schema.names:
        raise DataError(
            f"{path}: missing {role} column "
            f"'{column}'{_nearest(column, schema.names)}; "
            f"columns present: {schema.names}. Rename the column or point "
            f"--{role}-column at it."
        )


def _id_kind(schema: pa.Schema, path: Path, column: str) -> str:
    """Return 'int' or 'string' for an id column, or raise on any other type."""
    t = schema.field(column).type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    raise DataError(
        f"{path}: column '{column}' has type {t}; ids must be integers or strings. "
        "Cast the column (float ids lose precision and list ids are not ids)."
    )


def _normalise_ids(arr: pa.Array | pa.ChunkedArray, kind: str) -> pa.Array:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    return arr.cast(pa.int64() if kind == "int" else pa.large_string())


def _check_no_nulls(columns: dict[str, pa.Array], path: Path, first_row: int) -> None:
    """`DataError` naming every id column of the batch with nulls, in one message."""
    found = [
        f"column '{name}' has {arr.null_count} null ids (first at row "
        f"{first_row + int(pc.index(pc.is_null(arr), True).as_py())})"
        for name, arr in columns.items()
        if arr.null_count
    ]
    if found:
        raise DataError(f"{path}: {'; '.join(found)}; drop or fill those rows.")


def _check_weights(
    arr: pa.Array, path: Path, column: str, first_row: int
) -> np.ndarray:
    with np.errstate(over="ignore"):  # float64 beyond float32's range -> inf, refused
        weights = arr.to_numpy(zero_copy_only=False).astype(np.float32, copy=False)
    # Catches NaN and nulls (as NaN) too; inf would turn walk probabilities into NaN.
    bad = ~((weights > 0) & np.isfinite(weights))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: column '{column}' has {int(bad.sum())} weights that are not "
            f"positive finite numbers (first at row {first_row + row}: "
            f"{arr[row].as_py()}); weights must be > 0, below 3.4e38 and not NaN, inf "
            "or null: drop those rows or fix them."
        )
    return weights


def _check_weight_type(schema: pa.Schema, path: Path, column: str) -> None:
    t = schema.field(column).type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t)):
        raise DataError(
            f"{path}: column '{column}' has type {t}; weights must be numeric. Cast it "
            "to float (or drop the column for unweighted interactions)."
        )


def interaction_id_kinds(path: Path, cols: InteractionColumns) -> tuple[str, str]:
    """Check the interaction file's schema; return the (user, item) id kinds."""
    pf = open_parquet(path, "interactions")
    schema = pf.schema_arrow
    _require_column(schema, path, cols.user, "user")
    _require_column(schema, path, cols.item, "item")
    if cols.weight in schema.names:
        _check_weight_type(schema, path, cols.weight)
    if pf.metadata.num_rows == 0:
        raise DataError(
            f"{path}: the interaction table is empty; it needs at least one row."
        )
    return _id_kind(schema, path, cols.user), _id_kind(schema, path, cols.item)


def iter_interactions(
    path: Path, cols: InteractionColumns, *, batch_rows: int = BATCH_ROWS
) -> Iterator[InteractionBatch]:
    """Stream validated interaction batches from a Parquet file.

    The file is read row group by row group.
    """
    user_kind, item_kind = interaction_id_kinds(path, cols)
    pf = open_parquet(path, "interactions")
    has_weight = cols.weight in pf.schema_arrow.names
    columns = [cols.user, cols.item] + ([cols.weight] if has_weight else [])
    first_row = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, columns=columns):
            user = batch.column(cols.user)
            item = batch.column(cols.item)
            _check_no_nulls({cols.user: user, cols.item: item}, path, first_row)
            weight = None
            if has_weight:
                weight = _check_weights(
                    batch.column(cols.weight), path, cols.weight, first_row
                )
            yield InteractionBatch(
                _normalise_ids(user, user_kind), _normalise_ids(item, item_kind), weight
            )
            first_row += batch.num_rows
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(
            f"{path}: unreadable after row {first_row} ({exc}); the file is probably "
            "truncated or corrupt: rewrite it."
        ) from exc


def read_items(path: Path, item_column: str, item_kind: str) -> pa.Table:
    """Read and validate `items.parquet`: the catalogue, one row per item.

    Returns the table with the id column normalised to int64 or large_string and
    renamed to ``item``; feature columns are returned as stored.
    """
    pf = open_parquet(path, "items")
    schema = pf.schema_arrow
    _require_column(schema, path, item_column, "item")
    kind = _id_kind(schema, path, item_column)
    if kind != item_kind:
        raise DataError(
            f"{path}: column '{item_column}' holds {kind} ids but the interactions "
            f"hold {item_kind} ids; both files must use the same item ids."
        )
    try:
        table = pf.read()
    except (pa.ArrowInvalid, pa.ArrowIOError, OSError) as exc:
        raise DataError(
            f"{path}: unreadable ({exc}); the file is probably truncated."
        ) from exc
    if table.num_rows == 0:
        raise DataError(f"{path}: the items table is empty; it needs one row per item.")
    ids = table.column(item_column)
    _check_no_nulls({item_column: ids.combine_chunks()}, path, 0)
    ids = _normalise_ids(ids, kind)
    counts = pc.value_counts(ids)
    dup = counts.filter(pc.greater(counts.field("counts"), 1))
    if len(dup):
        shown = [d["values"].as_py() for d in dup[:5]]
        raise DataError(
            f"{path}: column '{item_column}' repeats {len(dup)} item ids "
            f"(e.g. {shown}); "
            "items.parquet must hold one row per item: deduplicate it."
        )
    table = table.drop_columns([item_column])
    return table.add_column(0, "item", ids)
