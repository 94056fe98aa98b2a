"""Build the bipartite graph store from interactions (and an optional item catalogue).

Two streaming passes over the interaction row groups: the first collects the distinct
ids, the second maps every row to contiguous indices and packs it into one int64 key
``context * num_items + item``. Sorting that key orders edges context-major, merges
duplicates (runs of equal keys) and yields the context -> items CSR; a stable sort by
item gives the item -> contexts CSR. No Python loop touches an edge.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from pinsage.atomic import atomic_dir, file_sha256, publish
from pinsage.data.contract import (
    BATCH_ROWS,
    InteractionColumns,
    interaction_id_kinds,
    iter_interactions,
    open_parquet,
    read_items,
)
from pinsage.data.split import write_test_split
from pinsage.errors import ConfigError, DataError
from pinsage.graph.feature_columns import write_features
from pinsage.graph.store import FORMAT_VERSION, CSRGraph, is_complete
from pinsage.manifests import GraphManifest

__all__ = ["build_graph", "csr_from_edges"]

log = logging.getLogger(__name__)

_ARRAY_NAMES = ("indptr", "indices", "weights")  # of each CSR, as stored
_SPLIT_CHUNK = 1 << 22  # edges per chunk when splitting keys (32 MB of int64 temps)

# InteractionColumns is a frozen dataclass, so one shared default instance is safe.
_DEFAULT_COLUMNS = InteractionColumns()


def _sorted_unique(chunks: list[pa.Array]) -> pa.Array:
    uniq = pc.unique(pa.concat_arrays(chunks))
    return uniq.take(pc.sort_indices(uniq))


def _distinct_ids(
    path: Path, cols: InteractionColumns, with_items: bool, batch_rows: int, pbar
) -> tuple:
    users, items = [], []
    for batch in iter_interactions(path, cols, batch_rows=batch_rows):
        users.append(pc.unique(batch.user))
        if with_items:
            items.append(pc.unique(batch.item))
        pbar.update(len(batch.user))
    return _sorted_unique(users), (_sorted_unique(items) if with_items else None)


def _merge_duplicates(
    key: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Sort edge keys and merge equal ones, summing weights (or counting them).

    Peak extra memory is about 10 bytes an edge (unweighted, no duplicates: 1) beyond
    ``key``: masks instead of concatenated copies, and no work when nothing repeats.
    Shapes: key (E,) int64, weights (E,) float32 or None -> (key (U,), weights (U,)).
    """
    if weights is None:
        key.sort()
    else:
        order = np.argsort(key, kind="stable")
        key, weights = key[order], weights[order]
        del order
    first = np.empty(len(key), dtype=bool)  # True where a run of equal keys starts
    first[0] = True
    np.not_equal(key[1:], key[:-1], out=first[1:])
    if first.all():
        return key, (np.ones(len(key), np.float32) if weights is None else weights)
    starts = np.flatnonzero(first)
    if weights is None:
        merged = np.diff(starts, append=len(key)).astype(np.float32)
    else:
        merged = np.add.reduceat(weights, starts).astype(np.float32)
    return key[first], merged


def _split_key(key: np.ndarray, num_items: int) -> tuple[np.ndarray, np.ndarray]:
    """``context * num_items + item`` -> (context, item) int32, in chunks.

    Chunks keep the int64 temporaries of the division small.
    """
    ctx = np.empty(len(key), dtype=np.int32)
    item = np.empty(len(key), dtype=np.int32)
    for lo in range(0, len(key), _SPLIT_CHUNK):
        q, r = np.divmod(key[lo : lo + _SPLIT_CHUNK], num_items)
        ctx[lo : lo + _SPLIT_CHUNK] = q
        item[lo : lo + _SPLIT_CHUNK] = r
    return ctx, item


def _csr(major: np.ndarray, minor: np.ndarray, weights: np.ndarray, num_major: int):
    """CSR of edges already grouped by major node: (indptr int64, indices int32, w).

    ``major`` (any order) only gives the per-node counts; ``minor`` and ``weights``
    must be in grouped order.
    """
    indptr = np.zeros(num_major + 1, dtype=np.int64)
    np.cumsum(np.bincount(major, minlength=num_major), out=indptr[1:])
    return indptr, minor.astype(np.int32, copy=False), weights


@dataclass
class _Packed:
    """Edges as packed keys; `_bipartite_csr` takes the arrays out (and frees them)."""

    key: np.ndarray | None  # (E,) int64 context * num_items + item
    weights: np.ndarray | None  # (E,) float32, None when unweighted
    rows_read: int


def _pack_keys(
    path: Path,
    columns: InteractionColumns,
    user_ids: pa.Array,
    item_ids: pa.Array,
    batch_rows: int,
    pbar,
) -> _Packed:
    """Second pass: each row as ``context * num_items + item`` (unknown items out)."""
    num_rows = open_parquet(path, "interactions").metadata.num_rows
    num_items = len(item_ids)
    key = np.empty(num_rows, dtype=np.int64)
    weights = None
    filled = 0
    for batch in iter_interactions(path, columns, batch_rows=batch_rows):
        ii = pc.index_in(batch.item, value_set=item_ids)
        kept = pc.is_valid(ii).to_numpy(zero_copy_only=False)
        ui = pc.index_in(batch.user, value_set=user_ids)
        ui, ii = ui.to_numpy(zero_copy_only=False), ii.to_numpy(zero_copy_only=False)
        if not kept.all():
            ui, ii = ui[kept], ii[kept].astype(np.int64)
        n = len(ui)
        np.multiply(ui, num_items, out=key[filled : filled + n], dtype=np.int64)
        key[filled : filled + n] += ii
        if batch.weight is not None:
            if weights is None:
                weights = np.empty(num_rows, dtype=np.float32)
            weights[filled : filled + n] = batch.weight[kept]
        filled += n
        pbar.update(len(kept))
    # The passes leave freed pages cached in Arrow's allocator: give them back before
    # the sort, where the build's memory peaks.
    pa.default_memory_pool().release_unused()
    return _Packed(
        key[:filled], None if weights is None else weights[:filled], num_rows
    )


def _bipartite_csr(
    packed: _Packed, user_ids: pa.Array, num_items: int
) -> tuple[tuple, tuple, pa.Array]:
    """Merge duplicate edges and lay them out as CSR both ways.

    Takes the arrays out of ``packed`` so that each is freed as soon as it is used
    (the build's memory peaks here). Returns (item CSR, context CSR, context ids
    without the contexts left edgeless).
    """
    key, weights = packed.key, packed.weights
    packed.key = packed.weights = None
    key, merged_w = _merge_duplicates(key, weights)
    del weights
    ctx, item = _split_key(key, num_items)
    del key
    # Contexts whose every interaction was dropped would be isolated: drop them too.
    present = np.bincount(ctx, minlength=len(user_ids)) > 0
    if not present.all():
        ctx = (np.cumsum(present) - 1).astype(np.int32)[ctx]
        user_ids = user_ids.filter(pa.array(present))
    item_csr, context_csr = _layout(ctx, item, merged_w, len(user_ids), num_items)
    return item_csr, context_csr, user_ids


def _layout(
    ctx: np.ndarray, item: np.ndarray, w: np.ndarray, num_contexts: int, num_items: int
) -> tuple[tuple, tuple]:
    """(item CSR, context CSR) of merged edges sorted by (context, item)."""
    context_csr = _csr(ctx, item, w, num_contexts)
    by_item = np.argsort(item, kind="stable")  # stable: contexts ascending per item
    # Offsets need only per-item counts, so item[by_item] is never materialised.
    item_csr = _csr(item, ctx[by_item], w[by_item], num_items)
    return item_csr, context_csr


def csr_from_edges(
    context: np.ndarray,
    item: np.ndarray,
    weights: np.ndarray,
    num_contexts: int,
    num_items: int,
) -> CSRGraph:
    """The in-memory graph of an edge list, laid out exactly as `build_graph` does.

    Equal (context, item) edges merge by summing their weights, rows are sorted by
    neighbour index and the graph is weighted when a merged weight differs from 1: a
    graph built from the same edges by `build_graph` holds the same arrays. Used to
    extend a trained graph with new items (`pinsage.infer.new_items`).
    Shapes: context, item (E,) int indices; weights (E,) float32.
    """
    key = context.astype(np.int64) * num_items + item.astype(np.int64)
    key, merged = _merge_duplicates(key, weights.astype(np.float32))
    ctx, it = _split_key(key, num_items)
    item_csr, context_csr = _layout(ctx, it, merged, num_contexts, num_items)
    arrays = {
        f"{side}_{name}": torch.from_numpy(np.ascontiguousarray(a))
        for side, csr in (("item", item_csr), ("context", context_csr))
        for name, a in zip(_ARRAY_NAMES, csr, strict=True)
    }
    return CSRGraph.from_arrays(weighted=bool(not np.all(merged == 1.0)), **arrays)


def _warn_if_untrainable(out: Path, num_items: int, context_indptr: np.ndarray) -> None:
    """Warn now about a graph `pinsage train` will refuse (or train only in part).

    The graph itself is valid (it can be sampled and inspected), so it is built; but
    the user learns at once, not after the next stage has started.
    """
    if num_items < 2:
        log.warning(
            "%s: the graph holds %d item; `pinsage train` needs at least two",
            out,
            num_items,
        )
    elif not (np.diff(context_indptr) > 1).any():
        log.warning(
            "%s: no context engaged two different items, so there are no item "
            "pairs: `pinsage train` trains only the context objective",
            out,
        )


def _write_arrays(
    tmp: Path, item_csr: tuple, context_csr: tuple, item_ids, user_ids
) -> None:
    for prefix, (indptr, indices, w) in (("item", item_csr), ("context", context_csr)):
        np.save(tmp / f"{prefix}_indptr.npy", indptr)
        np.save(tmp / f"{prefix}_indices.npy", indices)
        np.save(tmp / f"{prefix}_weights.npy", w)
    pq.write_table(pa.table({"id": item_ids}), tmp / "item_ids.parquet")
    pq.write_table(pa.table({"id": user_ids}), tmp / "context_ids.parquet")


def build_graph(
    interactions: Path,
    out: Path,
    *,
    items: Path | None = None,
    columns: InteractionColumns = _DEFAULT_COLUMNS,
    feature_kinds: dict[str, str] | None = None,
    test_fraction: float | None = None,
    seed: int = 0,
    overwrite: bool = False,
    batch_rows: int = BATCH_ROWS,
) -> GraphManifest:
    """Build ``out/`` (see DESIGN.md "Files") and return its manifest.

    Streams ``batch_rows`` interactions at a time. ``test_fraction`` (with
    ``seed``) first holds that share of each user's interactions out (the latest
    where there is a timestamp column, else a seeded draw; `write_test_split`): the
    graph is built from the rest and ``out/test.parquet`` holds them, in the data
    contract's columns, for `pinsage eval`. Returns the existing manifest without
    work when ``out`` is complete and was built from the same sources with the same
    options, unless ``overwrite``.
    """
    interactions, out = Path(interactions), Path(out)
    t0 = time.perf_counter()
    # The schema checked (a bad file named) before hashing; a test split keeps it.
    kinds = interaction_id_kinds(interactions, columns)
    options = {"columns": vars(columns), "feature_kinds": feature_kinds or {}}
    if test_fraction:
        options |= {"test_fraction": test_fraction, "seed": seed}
    provenance = {"sources": _checksums(interactions, items), "options": options}
    done = is_complete(out, **provenance)
    if done is not None and not overwrite:
        log.info("graph %s is up to date with its sources; nothing to do", out)
        return done
    if not overwrite and (out / "_SUCCESS").exists():
        raise ConfigError(
            f"{out} holds a graph built from other inputs or options; runs, "
            "embeddings and indexes built on it would no longer match it. Pass "
            "--overwrite to replace it, or choose another --out."
        )
    build = _GraphBuild(out, items, feature_kinds, batch_rows, provenance)
    if not test_fraction:
        return build.run(interactions, columns, kinds, t0)
    return _build_with_test_split(
        build, interactions, columns, kinds, t0, test_fraction, seed
    )


def _checksums(interactions: Path, items: Path | None) -> dict:
    """Each input's path and sha256: what a graph is built from."""
    sources = {"interactions": interactions} | ({"items": Path(items)} if items else {})
    return {k: {"path": str(p), "sha256": file_sha256(p)} for k, p in sources.items()}


def _build_with_test_split(
    build: _GraphBuild,
    interactions: Path,
    columns: InteractionColumns,
    kinds: tuple[str, str],
    t0: float,
    test_fraction: float,
    seed: int,
) -> GraphManifest:
    """``build`` from ``interactions`` less a held-out test share (in the graph)."""
    out = build.out
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{out.name}.split-", dir=out.parent) as d:
        scratch = Path(d)
        kept, held = write_test_split(
            interactions, scratch, test_fraction, seed, columns
        )
        log.info("held out %d of %d interactions as the test split", held, kept + held)
        contract = InteractionColumns(items_item=columns.catalogue_id)
        return build.run(
            scratch / "interactions.parquet",
            contract,
            kinds,
            t0,
            test_file=scratch / "test.parquet",
        )


@dataclass
class _GraphBuild:
    """One build into ``out``: its fixed inputs; `run` reads interactions and writes.

    ``provenance`` ({sources, options}) goes into the manifest as it is.
    """

    out: Path
    items: Path | None
    feature_kinds: dict[str, str] | None
    batch_rows: int
    provenance: dict

    def run(
        self,
        interactions: Path,
        columns: InteractionColumns,
        kinds: tuple[str, str],
        t0: float,
        *,
        test_file: Path | None = None,
    ) -> GraphManifest:
        """Read ``interactions`` (two streaming passes), then publish the graph.

        ``kinds`` are its (user, item) id kinds (`interaction_id_kinds`);
        ``test_file``, when given, is published inside the graph as
        ``test.parquet``.
        """
        user_kind, item_kind = kinds
        catalogue = None
        if self.items is not None:
            catalogue = read_items(self.items, columns.catalogue_id, item_kind)
        read = self._read(interactions, columns, catalogue)
        kept = len(read.packed.key)  # before the sort, which frees the keys
        t_sort = time.perf_counter()
        item_csr, context_csr, user_ids = _bipartite_csr(
            read.packed, read.user_ids, len(read.item_ids)
        )
        sort_seconds = time.perf_counter() - t_sort
        merged_w = context_csr[2]
        _warn_if_untrainable(self.out, len(read.item_ids), context_csr[0])
        summary = GraphManifest(
            format_version=FORMAT_VERSION,
            num_items=len(read.item_ids),
            num_contexts=len(user_ids),
            num_edges=len(merged_w),
            interactions_read=read.num_rows,
            duplicates_merged=kept - len(merged_w),
            dropped_unknown_items=read.num_rows - kept,
            isolated_items=int((np.diff(item_csr[0]) == 0).sum()),
            weighted=bool(not np.all(merged_w == 1.0)),
            id_types={"item": item_kind, "context": user_kind},
            dtypes={"indptr": "int64", "indices": "int32", "weights": "float32"},
            **self.provenance,
        )
        with atomic_dir(self.out, overwrite=True) as tmp:
            _write_arrays(tmp, item_csr, context_csr, read.item_ids, user_ids)
            specs = []
            if read.catalogue is not None:
                specs = write_features(
                    read.catalogue, tmp / "features", self.items, self.feature_kinds
                )
            if test_file is not None:
                shutil.copyfile(test_file, tmp / "test.parquet")
            manifest = replace(
                summary,
                features=[spec.to_json() for spec in specs],
                build_seconds=round(time.perf_counter() - t0, 3),
                sort_seconds=round(sort_seconds, 3),
            )
            publish(tmp, manifest.to_json())
        _log_built(self.out, manifest)
        return manifest

    def _read(
        self,
        interactions: Path,
        columns: InteractionColumns,
        catalogue: pa.Table | None,
    ) -> _Read:
        """The two passes: distinct ids, then every row packed into one key."""
        num_rows = open_parquet(interactions, "interactions").metadata.num_rows
        # disable=None: a bar on a terminal, none in logs (the log line has the time).
        with tqdm(
            total=2 * num_rows,
            desc="graph build",
            unit="rows",
            unit_scale=True,
            disable=None,
        ) as pbar:
            user_ids, item_ids = _distinct_ids(
                interactions, columns, catalogue is None, self.batch_rows, pbar
            )
            if catalogue is not None:
                catalogue = catalogue.take(pc.sort_indices(catalogue.column("item")))
                item_ids = catalogue.column("item").combine_chunks()
            packed = _pack_keys(
                interactions, columns, user_ids, item_ids, self.batch_rows, pbar
            )
        kept = len(packed.key)
        if kept == 0:
            raise DataError(
                f"{interactions}: none of its items is in the catalogue {self.items}; "
                "check that both files use the same item ids."
            )
        if kept < num_rows:
            log.warning(
                "%s: %d interactions name items missing from %s; dropped them",
                interactions,
                num_rows - kept,
                self.items,
            )
        return _Read(num_rows, user_ids, item_ids, catalogue, packed)


@dataclass
class _Read:
    """What the two passes over the interactions found."""

    num_rows: int
    user_ids: pa.Array
    item_ids: pa.Array
    catalogue: pa.Table | None
    packed: _Packed


def _log_built(out: Path, manifest: GraphManifest) -> None:
    test = " and the test split" if (out / "test.parquet").exists() else ""
    log.info(
        "built graph %s%s: %d items, %d contexts, %d edges (%d duplicates merged, %d "
        "dropped) in %.1fs",
        out,
        test,
        manifest.num_items,
        manifest.num_contexts,
        manifest.num_edges,
        manifest.duplicates_merged,
        manifest.dropped_unknown_items,
        manifest.build_seconds,
    )
