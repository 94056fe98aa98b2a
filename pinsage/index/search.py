"""Load a built index and answer "items like these" (the Python API of `query`).

    index = Index.load("index")
    ids, scores = index.search(items=["a", "b"], k=10)  # (2, 10) each, best first
    ids, scores = index.search(vectors=matrix, k=10)
    ids, scores = index.recommend(["u1"], k=10)  # where context vectors were indexed

A query item never appears among its own neighbours, nor a context's training items
among its recommendations. Batch queries run as one FAISS search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

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
from pinsage.infer.output import read_manifest

__all__ = ["MAX_K", "Contexts", "Index", "NoContextsError", "UnknownIdError"]

MAX_K = 1000  # DESIGN.md: k outside 1..1000 is bad input


class UnknownIdError(DataError, KeyError):
    """A queried item (or context) id is not in the index."""

    def __init__(self, what: str, key: object, path: Path) -> None:
        super().__init__(f"{what} {key!r} is not in the index {path}")
        self.what, self.key = what, key

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


class NoContextsError(DataError):
    """The index holds no context vectors, so it cannot recommend."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            f"the index {path} holds no context (user) vectors; embed with "
            "`pinsage embed --contexts` and rebuild the index to recommend."
        )


def _row_lookup(ids: np.ndarray) -> dict:
    return {key: row for row, key in enumerate(ids.tolist())}


def _rows(lookup: dict, keys: list, what: str, path: Path) -> np.ndarray:
    """Row of each id; `UnknownIdError` names the first unknown one."""
    rows = []
    for key in keys:
        row = lookup.get(key)
        if row is None and isinstance(key, str) and key.lstrip("-").isdigit():
            row = lookup.get(int(key))  # ids typed on a command line or URL
        if row is None:
            raise UnknownIdError(what, key, path)
        rows.append(row)
    return np.asarray(rows, dtype=np.int64)


class Contexts:
    """Context vectors of an index folder and each context's training items (rows)."""

    def __init__(self, path: Path) -> None:
        self.ids = pq.read_table(path / CONTEXT_IDS)["context"].to_numpy(
            zero_copy_only=False
        )
        self.vectors = np.load(path / CONTEXT_VECTORS, mmap_mode="r")
        self.seen_indptr = np.load(path / SEEN_INDPTR)
        self.seen_rows = np.load(path / SEEN_ROWS, mmap_mode="r")
        self._row = _row_lookup(self.ids)
        self._path = path

    def rows(self, contexts: list) -> np.ndarray:
        """Row of each context id; `UnknownIdError` names the first unknown one."""
        return _rows(self._row, contexts, "context", self._path)


class Index:
    """A built index: FAISS index, row -> item id map, normalised vectors, manifest."""

    def __init__(
        self,
        path: Path,
        index: faiss.Index,
        ids: np.ndarray,
        vectors: np.ndarray,
        manifest: dict,
    ) -> None:
        self.path = Path(path)
        self.index = index
        self.ids = ids
        self.vectors = vectors
        self.manifest = manifest
        self.contexts = Contexts(self.path) if manifest.get("contexts") else None
        self._row = _row_lookup(ids)

    @classmethod
    def load(cls, path: Path) -> Index:
        """Open the index folder ``path`` (written by `build_index`)."""
        path = Path(path)
        manifest = read_manifest(path)
        if manifest is None:
            raise DataError(
                f"{path} is not a complete index folder (no _SUCCESS or manifest); "
                "build it with `pinsage index build`."
            )
        index = faiss.read_index(str(path / INDEX_FILE))
        if manifest.get("search_params"):
            space = faiss.ParameterSpace()
            for name, value in manifest["search_params"].items():
                space.set_index_parameter(index, name, value)
        ids = pq.read_table(path / IDS_FILE)["item"].to_numpy(zero_copy_only=False)
        vectors = np.load(path / VECTORS_FILE, mmap_mode="r")
        return cls(path, index, ids, vectors, manifest)

    def __len__(self) -> int:
        return len(self.ids)

    def rows(self, items: list) -> np.ndarray:
        """Row of each item id; `UnknownIdError` names the first unknown one."""
        return _rows(self._row, items, "item", self.path)

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
            raise NoContextsError(self.path)
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
