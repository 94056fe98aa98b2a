"""Load a built index and answer "items like these" (the Python API of `query`).

    index = Index.load("index")
    ids, scores = index.search(items=["a", "b"], k=10)  # (2, 10) each, best first
    ids, scores = index.search(vectors=matrix, k=10)

A query item never appears among its own neighbours. Batch queries run as one FAISS
search.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pyarrow.parquet as pq

from pinsage.errors import ConfigError, DataError
from pinsage.index.build import IDS_FILE, INDEX_FILE, VECTORS_FILE
from pinsage.infer.output import read_manifest

__all__ = ["MAX_K", "Index", "UnknownItemError"]

MAX_K = 1000  # DESIGN.md: k outside 1..1000 is bad input


class UnknownItemError(DataError, KeyError):
    """A queried item id is not in the index."""

    def __init__(self, item: object, path: Path) -> None:
        super().__init__(f"item {item!r} is not in the index {path}")
        self.item = item

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


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
        self._row = {item: row for row, item in enumerate(ids.tolist())}

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
        """Row of each item id; `UnknownItemError` names the first unknown one."""
        rows = []
        for item in items:
            row = self._row.get(item)
            if row is None and isinstance(item, str) and item.lstrip("-").isdigit():
                row = self._row.get(int(item))  # ids typed on a command line or URL
            if row is None:
                raise UnknownItemError(item, self.path)
            rows.append(row)
        return np.asarray(rows, dtype=np.int64)

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
        if not 1 <= k <= MAX_K:
            raise ConfigError(f"k must be in 1..{MAX_K}, got {k}")
        if items is not None:
            own = self.rows(list(items))
            queries = np.asarray(self.vectors[own], dtype=np.float32)
        else:
            own = None
            queries = np.ascontiguousarray(vectors, dtype=np.float32).copy()
            faiss.normalize_L2(queries)
        extra = 0 if own is None else 1  # room for the query item itself
        scores, rows = self.index.search(queries, min(k + extra, len(self)))
        if own is not None:
            keep = rows != own[:, None]
            # Drop the query's own row where it came back, else the last one.
            keep[keep.all(axis=1), -1] = False
            rows = rows[keep].reshape(len(own), -1)
            scores = scores[keep].reshape(len(own), -1)
        rows, scores = rows[:, :k], scores[:, :k]
        if rows.shape[1] < k:  # a catalogue smaller than k
            pad = ((0, 0), (0, k - rows.shape[1]))
            rows, scores = np.pad(rows, pad, constant_values=-1), np.pad(scores, pad)
        ids = np.empty(rows.shape, dtype=object)
        valid = rows >= 0
        ids[valid] = self.ids[rows[valid]]
        scores = np.where(valid, scores, -np.inf).astype(np.float32)
        return ids, scores

    def similar(self, items: list, k: int = 10) -> list[dict]:
        """One JSON-ready document per item, as `pinsage query --json` prints it.

        ``{"item": ID, "neighbors": [{"item": ID, "score": s}, ...]}``, best first.
        """
        ids, scores = self.search(items=items, k=k)
        own = self.ids[self.rows(items)]
        return [
            {
                "item": _plain(item),
                "neighbors": [
                    {"item": _plain(i), "score": round(float(s), 6)}
                    for i, s in zip(row_ids, row_scores, strict=True)
                    if i is not None
                ],
            }
            for item, row_ids, row_scores in zip(own, ids, scores, strict=True)
        ]


def _plain(value: object) -> object:
    """A numpy scalar as the Python value JSON holds."""
    return value.item() if hasattr(value, "item") else value
