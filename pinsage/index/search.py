"""Load a built index and answer "items like these" (the Python API of `query`).

    index = Index.load("index")
    ids, scores = index.search(items=["a", "b"], k=10)  # (2, 10) each, best first
    ids, scores = index.search(vectors=matrix, k=10)
    ids, scores = index.recommend(["u1"], k=10)  # where context vectors were indexed

A query item never appears among its own neighbours, nor a context's training items
among its recommendations. Batch queries run as one FAISS search.

`Index.load` reads the whole folder into memory and checks it before it returns
(`DataError` naming the file and what is wrong otherwise): a loaded index answers
every lookup whatever later happens to its folder, which is what lets the service
swap to a new one without a failed request.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.atomic import MANIFEST, complete_manifest
from pinsage.config import MAX_K
from pinsage.errors import ConfigError, DataError
from pinsage.index.backend import faiss
from pinsage.index.build import IDS_FILE, INDEX_FILE, VECTORS_FILE
from pinsage.index.contexts import (
    CONTEXT_IDS,
    CONTEXT_VECTORS,
    SEEN_INDPTR,
    SEEN_ROWS,
    exclude_rows,
    ragged_gather,
)
from pinsage.manifests import IndexManifest

__all__ = ["MAX_K", "Contexts", "Index", "NoContextsError", "UnknownIdError"]


class UnknownIdError(DataError, KeyError):
    """A queried item (or context) id is not in the index."""

    def __init__(self, what: str, key: object, name: str) -> None:
        super().__init__(f"{what} {key!r} is not in the index {name}")
        self.what, self.key = what, key

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class NoContextsError(DataError):
    """The index holds no context vectors, so it cannot recommend."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"the index {name} holds no user vectors; embed with "
            "`pinsage embed --users` and rebuild the index to recommend."
        )


def _folder_error(name: str, what: str) -> DataError:
    """A broken index folder: ``name`` stands for it (the service's is relative)."""
    return DataError(
        f"index folder '{name}': {what}; rebuild it with `pinsage index build`."
    )


def _row_lookup(ids: np.ndarray) -> dict:
    return {key: row for row, key in enumerate(ids.tolist())}


def _rows(lookup: dict, keys: list, what: str, name: str) -> np.ndarray:
    """Row of each id; `UnknownIdError` names the first unknown one."""
    rows = []
    for key in keys:
        row = lookup.get(key)
        if row is None and isinstance(key, str) and key.lstrip("-").isdigit():
            row = lookup.get(int(key))  # ids typed on a command line or URL
        if row is None:
            raise UnknownIdError(what, key, name)
        rows.append(row)
    return np.asarray(rows, dtype=np.int64)


def _load_npy(file: Path, name: str, *, ndim: int, kind: str) -> np.ndarray:
    """A .npy array read whole, its header checked against the file's size first.

    Read whole, not memory-mapped: a mapped file truncated while it is served would
    kill the process on the next lookup. The size check makes a truncated file (or a
    header that claims more than the file holds) an error before anything is
    allocated. ``kind`` is the numpy dtype kinds allowed ("f" floats, "iu" ints).
    """
    readers = {(1, 0): np.lib.format.read_array_header_1_0}
    readers[2, 0] = np.lib.format.read_array_header_2_0
    try:
        with open(file, "rb") as f:
            reader = readers.get(np.lib.format.read_magic(f))
            if reader is None:
                raise ValueError("unsupported .npy version")
            shape, _, dtype = reader(f)
            held = file.stat().st_size - f.tell()
        if dtype.kind not in kind or len(shape) != ndim:
            raise ValueError(f"{len(shape)}-d {dtype} array")
        if held != math.prod(shape) * dtype.itemsize:
            raise ValueError(f"its header says {shape}, it holds {held} data bytes")
        return np.load(file, allow_pickle=False)
    except FileNotFoundError as exc:
        raise _folder_error(name, f"{file.name} is missing") from exc
    except (OSError, ValueError, EOFError) as exc:
        detail = exc.strerror if isinstance(exc, OSError) else exc
        what = "float" if kind == "f" else "integer"
        raise _folder_error(
            name, f"{file.name} does not hold a {ndim}-d {what} array ({detail})"
        ) from exc


def _load_vectors(file: Path, name: str, dim: int) -> np.ndarray:
    """A (rows, ``dim``) float32 matrix with finite values only."""
    vectors = _load_npy(file, name, ndim=2, kind="f")
    if vectors.shape[1] != dim:
        raise _folder_error(
            name, f"{file.name} holds {vectors.shape[1]}-dim vectors, the index {dim}"
        )
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise _folder_error(
            name, f"{file.name} has NaN or inf in {len(bad)} row(s), first row {bad[0]}"
        )
    return np.ascontiguousarray(vectors, dtype=np.float32)


def _load_ids(file: Path, column: str, name: str) -> np.ndarray:
    """The id column of a Parquet file, as numpy (ints, or objects for strings)."""
    if not file.is_file():
        raise _folder_error(name, f"{file.name} is missing")
    try:
        table = pq.read_table(file, columns=[column])
    except (OSError, ValueError, KeyError, pa.ArrowException) as exc:
        raise _folder_error(
            name, f"{file.name} is not a Parquet file with a '{column}' column"
        ) from exc
    return table[column].to_numpy(zero_copy_only=False)


def _load_manifest(path: Path, name: str) -> IndexManifest:
    """The folder's manifest: present only once the folder is done."""
    try:
        raw = complete_manifest(path)
    except (OSError, DataError) as exc:  # named by ``name``, not by its full path
        raise _folder_error(name, "manifest.json is not a JSON object") from exc
    if raw is None:
        raise _folder_error(
            name, "not a complete index folder (no _SUCCESS or manifest.json)"
        )
    try:
        return IndexManifest.from_json(raw, MANIFEST)
    except DataError as exc:
        raise _folder_error(name, str(exc)) from exc


def _load_faiss(path: Path, name: str, manifest: IndexManifest) -> faiss.Index:
    """The FAISS index, read whole, with the manifest's tuned search parameters."""
    file = path / INDEX_FILE
    if not file.is_file():
        raise _folder_error(name, f"{INDEX_FILE} is missing")
    try:
        index = faiss.read_index(str(file))
    except (RuntimeError, MemoryError) as exc:  # not its message: it holds the path
        what = f"{INDEX_FILE} does not read as a FAISS index"
        raise _folder_error(name, what) from exc
    params = manifest.search_params or {}
    try:
        space = faiss.ParameterSpace()
        for key, value in dict(params).items():
            space.set_index_parameter(index, key, value)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise _folder_error(
            name, f"manifest.json's search_params do not apply to {INDEX_FILE}"
        ) from exc
    return index


def _check_rows(name: str, **counts: int) -> None:
    """Files of one folder that must have as many rows as each other."""
    if len(set(counts.values())) > 1:
        held = ", ".join(f"{file} {n}" for file, n in counts.items())
        raise _folder_error(name, f"row counts differ ({held}); they must be equal")


class Contexts:
    """Context vectors of an index folder and each context's training items (rows)."""

    def __init__(
        self,
        ids: np.ndarray,
        vectors: np.ndarray,
        seen: tuple[np.ndarray, np.ndarray],
        name: str,
    ) -> None:
        self.ids = ids
        self.vectors = vectors
        self.seen_indptr, self.seen_rows = seen
        self._row = _row_lookup(ids)
        self._name = name

    @classmethod
    def load(cls, path: Path, name: str, *, dim: int, items: int) -> Contexts:
        """Read and check the context files of the index folder ``path``.

        ``dim`` and ``items`` are the index's: context vectors must have its
        dimension, and a context's training items must be rows of it (or -1, an item
        of the graph that the index lacks).
        """
        ids = _load_ids(path / CONTEXT_IDS, "context", name)
        vectors = _load_vectors(path / CONTEXT_VECTORS, name, dim)
        indptr = _load_npy(path / SEEN_INDPTR, name, ndim=1, kind="iu")
        seen = _load_npy(path / SEEN_ROWS, name, ndim=1, kind="iu")
        _check_rows(name, **{CONTEXT_IDS: len(ids), CONTEXT_VECTORS: len(vectors)})
        _check_rows(name, **{SEEN_INDPTR: len(indptr), "contexts + 1": len(ids) + 1})
        ends = (indptr[0], indptr[-1]) if len(indptr) else (0, 0)
        if ends != (0, len(seen)) or (np.diff(indptr) < 0).any():
            raise _folder_error(name, f"{SEEN_INDPTR} does not index {SEEN_ROWS}")
        if len(seen) and (seen.min() < -1 or seen.max() >= items):
            raise _folder_error(name, f"{SEEN_ROWS} holds rows outside the index")
        indptr, seen = indptr.astype(np.int64), seen.astype(np.int64)
        return cls(ids, vectors, (indptr, seen), name)

    def rows(self, contexts: list) -> np.ndarray:
        """Row of each context id; `UnknownIdError` names the first unknown one."""
        return _rows(self._row, contexts, "context", self._name)


class Index:
    """A built index: FAISS index, row -> item id map, normalised vectors, manifest."""

    def __init__(
        self,
        path: Path,
        index: faiss.Index,
        ids: np.ndarray,
        vectors: np.ndarray,
        manifest: IndexManifest,
        *,
        contexts: Contexts | None = None,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = str(path) if name is None else name
        self.index = index
        self.ids = ids
        self.vectors = vectors
        self.manifest = manifest
        self.contexts = contexts
        self._row = _row_lookup(ids)

    @classmethod
    def load(cls, path: Path, *, name: str | None = None) -> Index:
        """Open the index folder ``path`` (written by `build_index`), checked whole.

        The FAISS index, ids and vectors (and context files) must agree in rows and
        dimension, vectors must be finite and ids unique. ``name`` stands for the
        folder in messages (default: ``path``; the service passes one relative to its
        root, so that no answer shows a filesystem path).
        """
        path = Path(path)
        name = str(path) if name is None else name
        manifest = _load_manifest(path, name)
        ids = _load_ids(path / IDS_FILE, "item", name)
        index = _load_faiss(path, name, manifest)
        vectors = _load_vectors(path / VECTORS_FILE, name, index.d)
        rows = {INDEX_FILE: index.ntotal, VECTORS_FILE: len(vectors)}
        _check_rows(name, **rows, **{IDS_FILE: len(ids)})
        if not len(ids):
            raise _folder_error(name, "the index holds no items")
        contexts = None
        if manifest.contexts:
            contexts = Contexts.load(path, name, dim=index.d, items=len(ids))
        loaded = cls(path, index, ids, vectors, manifest, contexts=contexts, name=name)
        if len(loaded._row) != len(ids):
            raise _folder_error(name, f"{IDS_FILE} repeats some item ids")
        return loaded

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, items: list) -> np.ndarray:
        """Row of each item id; `UnknownIdError` names the first unknown one."""
        return _rows(self._row, items, "item", self.name)

    def search(
        self,
        *,
        items: list | None = None,
        vectors: np.ndarray | None = None,
        k: int = 10,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest items of each query item (itself excluded) or vector.

        Shapes: items (Q,) ids or vectors (Q, D) -> ids (Q, k), scores (Q, k) float32,
        best first; fewer than k neighbours (tiny catalogue) pad with id None and score
        -inf.
        """
        if (items is None) == (vectors is None):
            raise ValueError("pass exactly one of items= and vectors=")
        _check_k(k)
        if items is not None:
            return self._similar_rows(self.rows(list(items)), k)
        queries = np.ascontiguousarray(vectors, dtype=np.float32).copy()
        faiss.normalize_L2(queries)
        none = np.empty(0, dtype=np.int64)
        return self._search(queries, k, np.zeros(len(queries) + 1, np.int64), none)

    def recommend(self, contexts: list, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best items for each context (user), its training items excluded.

        Score z_u . z_i on the normalised vectors. Shapes: contexts (Q,) ids -> ids
        (Q, k), scores (Q, k) float32, best first, padded as in `search`. Raises
        `NoContextsError` when the index holds no context vectors.
        """
        _check_k(k)
        return self._recommend_rows(self._contexts().rows(list(contexts)), k)

    def similar(self, items: list, k: int = 10) -> list[dict]:
        """One JSON-ready document per item, as `pinsage query --json` prints it.

        ``{"item": ID, "neighbors": [{"item": ID, "score": s}, ...]}``, best first.
        """
        _check_k(k)
        own = self.rows(list(items))
        ids, scores = self._similar_rows(own, k)
        return _documents(("item", self.ids[own]), ("neighbors", ids, scores))

    def recommendations(self, contexts: list, k: int = 10) -> list[dict]:
        """One JSON-ready document per context, as `pinsage query --user` prints it.

        ``{"user": ID, "items": [{"item": ID, "score": s}, ...]}``, best first.
        """
        _check_k(k)
        ctx = self._contexts()
        rows = ctx.rows(list(contexts))
        ids, scores = self._recommend_rows(rows, k)
        return _documents(("user", ctx.ids[rows]), ("items", ids, scores))

    def _contexts(self) -> Contexts:
        if self.contexts is None:
            raise NoContextsError(self.name)
        return self.contexts

    def _similar_rows(self, own: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        queries = np.asarray(self.vectors[own], dtype=np.float32)
        return self._search(queries, k, np.arange(len(own) + 1), own)

    def _recommend_rows(
        self, rows: np.ndarray, k: int
    ) -> tuple[np.ndarray, np.ndarray]:
        ctx = self._contexts()
        indptr, seen = ragged_gather(ctx.seen_indptr, ctx.seen_rows, rows)
        queries = np.asarray(ctx.vectors[rows], dtype=np.float32)
        return self._search(queries, k, indptr, seen)

    def _search(
        self, queries: np.ndarray, k: int, indptr: np.ndarray, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """One FAISS search of ``queries``, each query's excluded rows left out.

        Asks FAISS for k plus the most rows any query excludes (capped at the
        catalogue), so that k remain after the exclusion.
        """
        extra = int(np.diff(indptr).max(initial=0))
        scores, rows = self.index.search(queries, min(k + extra, len(self)))
        rows, scores = exclude_rows(scores, rows, indptr, excluded, k)
        ids = np.empty(rows.shape, dtype=object)
        valid = rows >= 0
        ids[valid] = self.ids[rows[valid]]
        return ids, scores


def _check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be in 1..{MAX_K}, got {k}")


def _documents(query: tuple, found: tuple) -> list[dict]:
    """JSON-ready documents: ``{query key: id, found key: [{item, score}, ...]}``."""
    (query_key, query_ids), (found_key, ids, scores) = query, found
    return [
        {
            query_key: _plain(key),
            found_key: [
                {"item": _plain(i), "score": round(float(s), 6)}
                for i, s in zip(row_ids, row_scores, strict=True)
                if i is not None
            ],
        }
        for key, row_ids, row_scores in zip(query_ids, ids, scores, strict=True)
    ]


def _plain(value: object) -> object:
    """A numpy scalar as the Python value JSON holds."""
    return value.item() if hasattr(value, "item") else value
