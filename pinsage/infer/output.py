"""The embeddings folder (DESIGN.md "Files"): Parquet parts, manifest, ``_SUCCESS``.

    EMB/part-00000.parquet ...          item (external id), embedding list<float32>
    EMB/contexts/part-00000.parquet ... context (external id), embedding (if asked)
    EMB/manifest.json                   counts, dim, checkpoint sha256, engine, seed
    EMB/_SUCCESS

Items and contexts have separate folders so that whatever reads ``part-*.parquet``
(the index builder) sees items only. Ids are the graph's external ids, int64 or
string as in the graph. The folder is written as a temporary sibling and renamed into
place (`pinsage.atomic.atomic_dir`) by the job; this module writes its contents.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.atomic import complete_manifest
from pinsage.errors import DataError

__all__ = [
    "CONTEXTS_DIR",
    "Batches",
    "ROWS_PER_PART",
    "matrix_batches",
    "read_embeddings",
    "write_parts",
]

CONTEXTS_DIR = "contexts"
ROWS_PER_PART = 262_144  # 64 MiB of 64-dim float32 per part: few files, small reads

Batches = Iterable[tuple[np.ndarray, np.ndarray]]  # node indices (B,), vectors (B, D)


def matrix_batches(matrix: np.ndarray, rows: int = ROWS_PER_PART) -> Batches:
    """(node indices, vectors) slices of a matrix whose row r is node r.

    Shapes: matrix (N, D) -> ((B,) int64, (B, D)) pieces of ``rows`` rows.
    """
    for lo in range(0, len(matrix), rows):
        hi = min(lo + rows, len(matrix))
        yield np.arange(lo, hi, dtype=np.int64), matrix[lo:hi]


def _nonfinite_rows(vectors: np.ndarray) -> np.ndarray:
    """Indices of the rows holding NaN or +-inf.

    A float64 row sum is non-finite exactly then (float32 values cannot overflow it),
    and needs one float64 per row instead of a boolean matrix the size of ``vectors``.
    """
    return np.flatnonzero(~np.isfinite(vectors.sum(axis=1, dtype=np.float64)))


def write_parts(
    folder: Path,
    key: str,
    ids: pa.Array,
    batches: Batches,
) -> tuple[int, int]:
    """Write one part per batch of (node indices, vectors); return (rows, dim).

    ``ids`` maps a node index to its external id (the graph's ``item_ids`` or
    ``context_ids``); ``key`` names the id column. Shapes: each batch (B,) int64 and
    (B, D) float32. Raises `DataError` on a NaN or infinite vector: a model with
    non-finite weights or features would otherwise hand NaN to the index.
    """
    folder.mkdir(parents=True, exist_ok=True)
    count, dim = 0, 0
    for i, (nodes, vectors) in enumerate(batches):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if len(bad := _nonfinite_rows(vectors)):
            raise DataError(
                f"embeddings part-{i:05d}: the model gave {len(bad)} {key}s NaN or "
                f"infinite vectors (e.g. {key} {ids[int(nodes[bad[0]])].as_py()!r}); "
                "its checkpoint's weights or the graph's features are not finite. "
                "Nothing was written: rebuild the graph (`pinsage graph build` refuses "
                "such features) or embed with a checkpoint from before training "
                "diverged."
            )
        dim = vectors.shape[1]
        embedding = pa.ListArray.from_arrays(
            pa.array(np.arange(0, vectors.size + 1, dim, dtype=np.int32)),
            pa.array(vectors.reshape(-1)),
        )
        table = pa.table({key: ids.take(pa.array(nodes)), "embedding": embedding})
        pq.write_table(table, folder / f"part-{i:05d}.parquet")
        count += len(nodes)
    return count, dim


def read_embeddings(
    out: Path, *, contexts: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and vectors of a complete embeddings folder (the context ones if asked).

    Returns (ids (N,) int64, or object array of str, matrix (N, D) float32), in part
    order. Raises `DataError` when the folder is incomplete, holds no contexts, or
    holds a NaN or infinite vector (the index and lookups must never see one).
    """
    out = Path(out)
    if complete_manifest(out) is None:
        raise DataError(
            f"{out} is not a complete embeddings folder (no _SUCCESS or manifest); "
            "write it with `pinsage embed`."
        )
    folder = out / CONTEXTS_DIR if contexts else out
    parts = sorted(folder.glob("part-*.parquet"))
    if contexts and not parts:
        raise DataError(
            f"{out} holds no user vectors; re-run `pinsage embed --users --overwrite`."
        )
    tables = [pq.read_table(p) for p in parts]
    table = pa.concat_tables(tables)
    key = "context" if contexts else "item"
    ids = table[key].to_numpy()
    flat = table["embedding"].combine_chunks().flatten().to_numpy()
    matrix = flat.reshape(table.num_rows, -1).astype(np.float32, copy=False)
    if len(bad := _nonfinite_rows(matrix)):
        ends = np.cumsum([t.num_rows for t in tables])
        part = parts[int(np.searchsorted(ends, bad[0], side="right"))]
        example = table[key][int(bad[0])].as_py()
        raise DataError(
            f"{part}: {len(bad)} {key} vectors hold NaN or inf (e.g. {key} "
            f"{example!r}); no index or lookup can use them. Re-run `pinsage embed "
            "--overwrite` with a checkpoint trained to finite weights."
        )
    return ids, matrix
