"""Load the graph store: CSR arrays (memory-mapped), id maps and features.

``CSRGraph`` is the plain-tensor view the samplers take; ``Graph`` adds what only the
edges of the system need (external ids, features, the manifest).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from torch import Tensor

from pinsage.atomic import MANIFEST, read_json
from pinsage.errors import DataError
from pinsage.graph.feature_columns import FeatureSpec, load_feature
from pinsage.manifests import GraphManifest

__all__ = ["CSRGraph", "FORMAT_VERSION", "Graph", "is_complete", "load_graph"]

FORMAT_VERSION = 1
_ARRAYS = ("indptr", "indices", "weights")


@dataclass(frozen=True)
class CSRGraph:
    """The bipartite graph as CSR tensors in both directions.

    Shapes: item_indptr (I+1,) int64, item_indices (E,) int32 context ids,
    item_weights (E,) float32; context_* likewise with item ids. ``item_cumw`` and
    ``context_cumw`` (E,) float64 are global running sums of the weights, present only
    when the graph is weighted (they let a walk pick a neighbour in proportion to its
    weight with one ``searchsorted``); ``None`` means every weight is equal.
    """

    item_indptr: Tensor
    item_indices: Tensor
    item_weights: Tensor
    context_indptr: Tensor
    context_indices: Tensor
    context_weights: Tensor
    item_cumw: Tensor | None = None
    context_cumw: Tensor | None = None
    item_degree: Tensor | None = None
    context_degree: Tensor | None = None
    max_degree: int = 0

    @property
    def num_items(self) -> int:
        """Number of items (rows of the item -> contexts CSR)."""
        return self.item_indptr.numel() - 1

    @property
    def num_contexts(self) -> int:
        """Number of contexts (rows of the context -> items CSR)."""
        return self.context_indptr.numel() - 1

    @property
    def num_edges(self) -> int:
        """Number of item-context edges."""
        return self.item_indices.numel()

    @property
    def device(self) -> torch.device:
        """Device the CSR tensors are on."""
        return self.item_indptr.device

    @classmethod
    def from_arrays(cls, weighted: bool | None = None, **arrays: Tensor) -> CSRGraph:
        """Wrap the six CSR tensors; add running weight sums when ``weighted``.

        ``weighted=None`` decides from the weights themselves.
        """
        if weighted is None:
            weighted = (
                bool((arrays["item_weights"] != arrays["item_weights"][:1]).any())
                if arrays["item_weights"].numel()
                else False
            )
        for side in ("item", "context"):
            indptr = arrays[f"{side}_indptr"]
            arrays[f"{side}_degree"] = (indptr[1:] - indptr[:-1]).int()
            if weighted:
                arrays[f"{side}_cumw"] = torch.cumsum(
                    arrays[f"{side}_weights"].double(), 0
                )
        degrees = [
            d for d in (arrays["item_degree"], arrays["context_degree"]) if d.numel()
        ]
        return cls(**arrays, max_degree=max((int(d.max()) for d in degrees), default=0))

    def to(self, device: torch.device | str) -> CSRGraph:
        """Copy every tensor to ``device`` (e.g. a CUDA GPU for GPU sampling)."""
        moved = {
            f.name: (
                t.to(device) if isinstance(t := getattr(self, f.name), Tensor) else t
            )
            for f in fields(self)
        }
        return CSRGraph(**moved)

    def item_degrees(self) -> Tensor:
        """(I,) int64 number of contexts per item (0 = isolated, cold-start)."""
        return self.item_degree.long()


def _load_npy(path: Path, mmap: bool) -> Tensor:
    # mmap_mode "c" (copy-on-write) maps the file without reading it and, unlike "r",
    # gives a writable array, which torch.from_numpy needs to share memory silently.
    # allow_pickle=False: an object array would unpickle (run code) as it loads.
    mode = "c" if mmap else None
    return torch.from_numpy(np.load(path, mmap_mode=mode, allow_pickle=False))


def is_complete(out: Path, sources: dict, options: dict) -> GraphManifest | None:
    """Return the manifest if ``out`` is a complete graph of these sources.

    Returns None when it is incomplete or was built from other sources or options.
    """
    key = {"format_version": FORMAT_VERSION, "sources": sources, "options": options}
    return GraphManifest.read_current(out, key)


class Graph:
    """A loaded graph directory: CSR tensors, external id maps, features, manifest."""

    def __init__(self, path: Path, *, mmap: bool = True) -> None:
        self.path = Path(path)
        if not (self.path / "_SUCCESS").exists():
            raise DataError(
                f"{self.path} is not a complete graph directory (no _SUCCESS); "
                "build it with `pinsage graph build`."
            )
        raw = read_json(self.path / MANIFEST)
        version = raw.get("format_version")
        if version != FORMAT_VERSION:
            raise DataError(
                f"{self.path}: graph format version {version}, this pinsage reads "
                f"{FORMAT_VERSION}; rebuild it with `pinsage graph build --overwrite`."
            )
        self.manifest = GraphManifest.from_json(raw, self.path / MANIFEST)
        arrays = {
            f"{side}_{name}": _load_npy(self.path / f"{side}_{name}.npy", mmap)
            for side in ("item", "context")
            for name in _ARRAYS
        }
        self.csr = CSRGraph.from_arrays(weighted=self.manifest.weighted, **arrays)
        self.item_ids: pa.Array = _read_ids(self.path / "item_ids.parquet")
        self.context_ids: pa.Array = _read_ids(self.path / "context_ids.parquet")
        self.features = [FeatureSpec(**f) for f in self.manifest.features]

    @property
    def num_items(self) -> int:
        """Number of items, as recorded in the manifest."""
        return self.manifest.num_items

    @property
    def num_contexts(self) -> int:
        """Number of contexts (users), as recorded in the manifest."""
        return self.manifest.num_contexts

    def item_index(self, ids: list | pa.Array) -> np.ndarray:
        """External item ids -> int64 indices; `DataError` naming any unknown id."""
        return _lookup(
            self.item_ids, ids, "item", self.manifest.id_types["item"], self.path
        )

    def context_index(self, ids: list | pa.Array) -> np.ndarray:
        """External context (user) ids -> int64 indices; `DataError` on unknown ids."""
        return _lookup(
            self.context_ids,
            ids,
            "context",
            self.manifest.id_types["context"],
            self.path,
        )

    def feature(self, name: str) -> dict:
        """Load one feature column by name (see `pinsage.graph.feature_columns`)."""
        for spec in self.features:
            if spec.name == name:
                return load_feature(self.path / "features", spec)
        raise DataError(
            f"{self.path}: no feature column '{name}'; it has "
            f"{[s.name for s in self.features]}."
        )


def _read_ids(path: Path) -> pa.Array:
    return pq.read_table(path).column("id").combine_chunks()


def _lookup(universe: pa.Array, ids, what: str, kind: str, path: Path) -> np.ndarray:
    target = pa.int64() if kind == "int" else pa.large_string()
    try:
        query = (
            pa.array(ids).cast(target)
            if not isinstance(ids, pa.Array)
            else ids.cast(target)
        )
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
        raise DataError(
            f"{what} ids {list(ids)[:5]} are not {kind} ids as in {path}."
        ) from exc
    index = pc.index_in(query, value_set=universe)
    if index.null_count:
        missing = query.filter(pc.is_null(index)).to_pylist()
        raise DataError(
            f"unknown {what} id(s) {missing[:5]} (not in the graph {path}); "
            "use ids from the interactions the graph was built from."
        )
    return index.to_numpy(zero_copy_only=False).astype(np.int64)


def load_graph(path: Path, *, mmap: bool = True) -> Graph:
    """Open a graph directory written by `build_graph` (CSR arrays memory-mapped)."""
    return Graph(path, mmap=mmap)
