"""Item features stored column-wise, one file per column, rows in item-index order.

Kinds (inferred from the Arrow type, or given explicitly):

- ``dense``: a float/bool/integer scalar -> ``{name}.npy`` float32 (N,).
- ``vector``: a fixed-length list of numbers -> ``{name}.npy`` float32 (N, D).
- ``categorical``: an integer or short string, or a list of strings (multi-valued,
  e.g. genres) -> ``{name}.codes.npy`` int32 + ``{name}.offsets.npy`` int64 (CSR: item
  i's codes are ``codes[offsets[i]:offsets[i+1]]``) + ``{name}.vocab.parquet``.
- ``text``: free text -> ``{name}.parquet`` (column ``text``); the model tokenises it.

Missing values (nulls): dense and vector rows become 0, categoricals an empty code
list, text an empty string; their count is recorded in the manifest. NaN, ``inf`` and
float64 values beyond float32's range in a dense or vector column are refused, never
stored: one such value makes every embedding it reaches NaN.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pinsage.config import FEATURE_KINDS
from pinsage.errors import DataError

__all__ = [
    "FEATURE_KINDS",
    "FeatureSpec",
    "infer_kind",
    "load_feature",
    "write_features",
]

# A string column whose values average more than this many words is text, not a
# category.
TEXT_MIN_MEAN_WORDS = 2.0
# ... or whose distinct values exceed this share of rows (titles, descriptions).
TEXT_MIN_DISTINCT_SHARE = 0.5


@dataclass(frozen=True)
class FeatureSpec:
    """What the manifest records about one stored feature column."""

    name: str
    kind: str
    dim: int = 1  # dense: 1, vector: D, categorical: vocabulary size, text: 1
    missing: int = 0

    def to_json(self) -> dict:
        """Return the spec as a JSON-serialisable dict of its fields."""
        return asdict(self)


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t)


def infer_kind(column: pa.ChunkedArray) -> str | None:
    """Guess a column's feature kind from its type (and, for strings, its values)."""
    t = column.type
    if pa.types.is_dictionary(t):
        return "categorical"
    if pa.types.is_floating(t) or pa.types.is_boolean(t):
        return "dense"
    if pa.types.is_integer(t):
        return "categorical"
    if (
        pa.types.is_list(t)
        or pa.types.is_large_list(t)
        or pa.types.is_fixed_size_list(t)
    ):
        vt = t.value_type
        if pa.types.is_floating(vt) or pa.types.is_integer(vt):
            return "vector"
        if _is_string(vt):
            return "categorical"
        return None
    if _is_string(t):
        words = pc.mean(pc.list_value_length(pc.utf8_split_whitespace(column))).as_py()
        distinct = pc.count_distinct(column).as_py()
        if (
            words or 0
        ) > TEXT_MIN_MEAN_WORDS or distinct > TEXT_MIN_DISTINCT_SHARE * len(column):
            return "text"
        return "categorical"
    return None


def _unsupported(
    source: Path, name: str, t: pa.DataType, kind: str | None
) -> DataError:
    return DataError(
        f"{source}: feature column '{name}' has type {t}, which cannot be used as "
        f"{kind or 'any feature kind'} (kinds: {', '.join(FEATURE_KINDS)}); cast it, "
        "drop it, or set its kind explicitly."
    )


def _check_finite(
    col: pa.ChunkedArray, kind: str, name: str, source: Path, ids: pa.ChunkedArray
) -> None:
    """Refuse NaN, +-inf and values a float32 cast would turn into inf.

    Features are stored as float32 and a single non-finite input makes every embedding
    it reaches NaN, so the build stops here, where the file and item can be named.
    Nulls in a dense column are missing values (stored as 0 and counted); a null
    inside a vector is refused with the rest.
    """
    arr = col.combine_chunks()
    if kind == "vector":
        rows = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
        arr = pc.list_flatten(arr)
    else:
        rows = np.flatnonzero(arr.is_valid().to_numpy(zero_copy_only=False))
        arr = arr.drop_null()
    values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    bad = ~(np.abs(values) <= np.finfo(np.float32).max)  # NaN, null, inf, overflow
    if not bad.any():
        return
    bad_rows = np.unique(rows[bad])
    first = int(np.flatnonzero(bad)[0])
    dense = kind == "dense"
    raise DataError(
        f"{source}: {kind} feature column '{name}' has {len(bad_rows)} row(s) holding "
        f"NaN, inf{'' if dense else ', null'} or values beyond float32's range "
        f"(+-3.4e38), e.g. item {ids[int(rows[first])].as_py()!r}: {values[first]}; "
        "replace them with finite values"
        + (" (or nulls, which count as missing)." if dense else ".")
    )


def _write_dense(col: pa.ChunkedArray, out: Path, name: str) -> FeatureSpec:
    values = pc.cast(col, pa.float32()).to_numpy(zero_copy_only=False)
    missing = int(np.isnan(values).sum())
    np.save(out / f"{name}.npy", np.nan_to_num(values, nan=0.0).astype(np.float32))
    return FeatureSpec(name, "dense", 1, missing)


def _write_vector(
    col: pa.ChunkedArray, out: Path, name: str, source: Path
) -> FeatureSpec:
    arr = col.combine_chunks()
    lengths = pc.list_value_length(arr).to_numpy(zero_copy_only=False)
    present = ~np.isnan(lengths.astype(np.float64))
    dims = np.unique(lengths[present])
    if len(dims) != 1 or dims[0] == 0:
        raise DataError(
            f"{source}: vector feature '{name}' has lists of lengths "
            f"{dims[:5].tolist()}; "
            "every row must hold the same number (>0) of values."
        )
    dim = int(dims[0])
    flat = pc.cast(pc.list_flatten(arr), pa.float32()).to_numpy(zero_copy_only=False)
    matrix = np.zeros((len(arr), dim), dtype=np.float32)
    matrix[present] = flat.reshape(-1, dim)
    np.save(out / f"{name}.npy", matrix)
    return FeatureSpec(name, "vector", dim, int((~present).sum()))


def _write_categorical(col: pa.ChunkedArray, out: Path, name: str) -> FeatureSpec:
    arr = col.combine_chunks()
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if pa.types.is_list(arr.type) or pa.types.is_large_list(arr.type):
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(
            zero_copy_only=False
        )
        values = pc.list_flatten(arr)
    else:
        lengths = (~pc.is_null(arr).to_numpy(zero_copy_only=False)).astype(np.int64)
        values = arr.drop_null()
    values = values.cast(pa.large_string()) if _is_string(values.type) else values
    vocab = pc.unique(values.drop_null())
    vocab = vocab.take(pc.sort_indices(vocab))  # sorted: the same data, the same codes
    codes = pc.index_in(values, value_set=vocab)
    keep = pc.is_valid(codes).to_numpy(zero_copy_only=False)
    codes = codes.to_numpy(zero_copy_only=False)
    # Null entries inside lists are dropped; recount each row's length accordingly.
    row_of = np.repeat(np.arange(len(lengths)), lengths)
    lengths = np.bincount(row_of[keep], minlength=len(lengths))
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    np.save(out / f"{name}.codes.npy", codes[keep].astype(np.int32))
    np.save(out / f"{name}.offsets.npy", offsets)
    pq.write_table(pa.table({"value": vocab}), out / f"{name}.vocab.parquet")
    return FeatureSpec(name, "categorical", len(vocab), int((lengths == 0).sum()))


def _write_text(col: pa.ChunkedArray, out: Path, name: str) -> FeatureSpec:
    text = pc.cast(col, pa.large_string())
    missing = text.null_count
    pq.write_table(pa.table({"text": pc.fill_null(text, "")}), out / f"{name}.parquet")
    return FeatureSpec(name, "text", 1, missing)


def write_features(
    items: pa.Table, out: Path, source: Path, kinds: dict[str, str] | None = None
) -> list[FeatureSpec]:
    """Store every non-id column of ``items`` (rows already in item-index order)."""
    kinds = dict(kinds or {})
    unknown = set(kinds) - set(items.column_names)
    if unknown:
        raise DataError(
            f"{source}: feature kinds given for missing columns {sorted(unknown)}; "
            f"feature columns are {[c for c in items.column_names if c != 'item']}."
        )
    out.mkdir(parents=True, exist_ok=True)
    specs = []
    for name in items.column_names:
        if name == "item":
            continue
        col = items.column(name)
        kind = kinds.get(name) or infer_kind(col)
        t = col.type.value_type if pa.types.is_dictionary(col.type) else col.type
        is_list = (
            pa.types.is_list(t)
            or pa.types.is_large_list(t)
            or pa.types.is_fixed_size_list(t)
        )
        numeric = (
            pa.types.is_floating(t) or pa.types.is_integer(t) or pa.types.is_boolean(t)
        )
        if kind == "dense" and numeric:
            _check_finite(col, kind, name, source, items.column("item"))
            specs.append(_write_dense(col, out, name))
        elif kind == "vector" and is_list:
            _check_finite(col, kind, name, source, items.column("item"))
            specs.append(_write_vector(col, out, name, source))
        elif kind == "categorical" and (numeric or _is_string(t) or is_list):
            specs.append(_write_categorical(col, out, name))
        elif kind == "text" and _is_string(t):
            specs.append(_write_text(col, out, name))
        else:
            raise _unsupported(source, name, col.type, kind)
    return specs


def load_feature(
    directory: Path, spec: FeatureSpec
) -> dict[str, np.ndarray | pa.Array]:
    """Load one stored feature column (memory-mapped where it is an array)."""
    d = Path(directory)
    if spec.kind in ("dense", "vector"):
        return {"values": np.load(d / f"{spec.name}.npy", mmap_mode="r")}
    if spec.kind == "categorical":
        return {
            "codes": np.load(d / f"{spec.name}.codes.npy", mmap_mode="r"),
            "offsets": np.load(d / f"{spec.name}.offsets.npy", mmap_mode="r"),
            "vocab": pq.read_table(d / f"{spec.name}.vocab.parquet").column("value"),
        }
    return {"text": pq.read_table(d / f"{spec.name}.parquet").column("text")}
