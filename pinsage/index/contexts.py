"""Context (user) vectors in an index folder, and each context's training items.

    INDEX/contexts.npy          (C, D) float32 context vectors, L2-normalised
    INDEX/context_ids.parquet   row -> context id
    INDEX/seen_indptr.npy       (C+1,) int64: context r's training items are
    INDEX/seen_rows.npy         seen_rows[seen_indptr[r]:seen_indptr[r+1]], index rows

`Index.recommend` scores every item against a context vector (z_u . z_i, DESIGN.md
"Context vectors") and leaves out the context's training items: recommending what a
user already engaged with helps nobody, and the evaluation protocol leaves them out
too. The index folder carries them so that a service needs nothing but the folder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.errors import DataError
from pinsage.index.backend import faiss
from pinsage.infer.output import read_embeddings
from pinsage.manifests import EmbeddingsManifest

__all__ = [
    "CONTEXT_FILES",
    "context_graph",
    "exclude_rows",
    "ragged_gather",
    "seen_rows",
    "write_contexts",
]

CONTEXT_VECTORS = "contexts.npy"
CONTEXT_IDS = "context_ids.parquet"
SEEN_INDPTR = "seen_indptr.npy"
SEEN_ROWS = "seen_rows.npy"
CONTEXT_FILES = (CONTEXT_VECTORS, CONTEXT_IDS, SEEN_INDPTR, SEEN_ROWS)


def ragged_gather(
    indptr: np.ndarray, values: np.ndarray, rows: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The CSR rows ``rows`` of (``indptr``, ``values``), as a CSR of their own.

    Shapes: indptr (R+1,) int64, values (E,), rows (Q,) -> (Q+1,) int64, (E',).
    """
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    out = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=out[1:])
    shift = np.repeat(out[:-1] - starts, lengths)  # output slot -> source position
    positions = np.arange(out[-1], dtype=np.int64) - shift
    return out, values[positions]


def seen_rows(
    graph_dir: Path, item_ids: np.ndarray, context_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Each context's training items as rows of ``item_ids`` (the index's order).

    Shapes: item_ids (N,), context_ids (C,) external ids -> (C+1,) int64 indptr,
    (E,) int64 rows. Raises `DataError` when an id is not in the graph.
    """
    # Here, not at the top: the lookup path (Index, `query`, `serve`) never reads a
    # graph, and the graph store brings torch, seconds of start-up.
    from pinsage.graph import load_graph

    graph = load_graph(graph_dir)
    row_of_item = np.full(graph.num_items, -1, dtype=np.int64)
    row_of_item[graph.item_index(pa.array(item_ids))] = np.arange(len(item_ids))
    indptr, items = ragged_gather(
        graph.csr.context_indptr.numpy(),
        graph.csr.context_indices.numpy(),
        graph.context_index(pa.array(context_ids)),
    )
    return indptr, row_of_item[items]


def context_graph(
    embeddings: Path, source: EmbeddingsManifest | None, graph: Path | None
) -> Path | None:
    """The graph whose training items recommendations leave out; None: no contexts.

    ``source`` is the embeddings manifest; ``graph`` overrides the graph it names.
    Raises `DataError` when the embeddings hold contexts and the graph is missing.
    """
    if source is None or not source.contexts:
        return None
    graph = Path(graph or source.graph)
    if not (graph / "_SUCCESS").exists():
        raise DataError(
            f"{embeddings} holds context vectors, but the graph '{graph}' they were "
            "embedded from is not a complete graph folder; its training interactions "
            "are what recommendations leave out. Pass `--graph GRAPH`."
        )
    return graph


def write_contexts(
    folder: Path, embeddings: Path, graph_dir: Path, item_ids: np.ndarray
) -> int:
    """Write the context files of an index folder; the number of contexts."""
    ids, vectors = read_embeddings(embeddings, contexts=True)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(vectors)
    indptr, rows = seen_rows(graph_dir, item_ids, ids)
    np.save(folder / CONTEXT_VECTORS, vectors)
    pq.write_table(pa.table({"context": ids}), folder / CONTEXT_IDS)
    np.save(folder / SEEN_INDPTR, indptr)
    np.save(folder / SEEN_ROWS, rows)
    return len(ids)


def exclude_rows(
    scores: np.ndarray,
    rows: np.ndarray,
    indptr: np.ndarray,
    excluded: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """The best ``k`` of each query's results that are not among its excluded rows.

    Query q excludes ``excluded[indptr[q]:indptr[q+1]]``; rows of -1 (FAISS found
    nothing) count as excluded. Results keep their order; a query left with fewer
    than k pads with row -1 and score -inf. Shapes: scores, rows (Q, K'), indptr
    (Q+1,), excluded (E,) -> (Q, k), (Q, k).
    """
    q, width = rows.shape
    n = int(max(rows.max(initial=-1), excluded.max(initial=-1))) + 2
    owner = np.repeat(np.arange(q, dtype=np.int64), np.diff(indptr))
    keep = (rows >= 0) & ~np.isin(
        np.arange(q, dtype=np.int64)[:, None] * n + rows, owner * n + excluded
    )
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept first, in order
    rows = np.take_along_axis(rows, order, axis=1)
    scores = np.take_along_axis(scores, order, axis=1)
    valid = np.take_along_axis(keep, order, axis=1)
    if width < k:
        pad = ((0, 0), (0, k - width))
        rows, scores = np.pad(rows, pad), np.pad(scores, pad)
        valid = np.pad(valid, pad)
    return (
        np.where(valid, rows, -1),
        np.where(valid, scores, -np.inf).astype(np.float32),
    )
