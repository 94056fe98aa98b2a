"""Items that arrived after training, embedded without retraining (`embed --items`).

A trained run embeds any item from its features and its neighbourhood, so a new item
needs no new weights: only a place in the graph. The new items (an items file with
the graph's feature columns, and optionally their interactions with known users) are
appended to the trained graph in memory, after its last item, so every old index
stays what the checkpoint learned; their features are encoded with the graph's own
vocabularies (a category the graph never saw is left out), and their ID rows are
zero, as a cold item's are. Their neighbourhoods are drawn from the table chunks
that hold them (`pinsage.sampler.table` seeds by chunk), so each new item gets exactly
the vector a full re-embed of the extended graph gives it. The output is an
embeddings folder of the new items alone; `pinsage index add` appends it to an index.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from torch import Tensor, nn

from pinsage.atomic import atomic_dir, file_sha256, publish
from pinsage.data.contract import InteractionColumns, iter_interactions, read_items
from pinsage.errors import DataError
from pinsage.features import FeatureStore
from pinsage.graph.build import csr_from_edges
from pinsage.graph.feature_columns import load_feature, write_features
from pinsage.graph.store import CSRGraph, Graph, load_graph
from pinsage.infer.job import Phases, latest_checkpoint_path, reusable_manifest
from pinsage.infer.output import matrix_batches, write_parts
from pinsage.manifests import EmbeddingsManifest
from pinsage.nn.model import PinSageModel
from pinsage.run import load_run
from pinsage.sampler.blocks import build_blocks
from pinsage.sampler.table import CHUNK, neighborhood_table
from pinsage.sampler.walks import Neighbors
from pinsage.threads import fit_torch_threads

__all__ = ["embed_new_items"]

log = logging.getLogger(__name__)

BATCH = 1024  # new items embedded per forward pass


def _catalogue(graph: Graph, items: Path, item_column: str) -> pa.Table:
    """The new items' table, checked against the graph: new ids, its feature columns."""
    table = read_items(items, item_column, graph.manifest.id_types["item"])
    known = pc.is_valid(pc.index_in(table.column("item"), value_set=graph.item_ids))
    if pc.any(known).as_py():
        shown = table.column("item").filter(known)[:5].to_pylist()
        raise DataError(
            f"{items}: {pc.sum(known).as_py()} item ids are already in the graph "
            f"{graph.path} (e.g. {shown}); pass only new items (the graph's own are "
            "embedded by `pinsage embed` without --items)."
        )
    names = [s.name for s in graph.features]
    missing = [n for n in names if n not in table.column_names]
    if missing:
        raise DataError(
            f"{items}: no column(s) {missing}; the graph's items have the feature "
            f"columns {names}, and new items need the same (nulls are allowed)."
        )
    # Sorted by id, as `build_graph` orders a catalogue: new items whose ids sort
    # after the graph's get the indices a rebuilt graph would give them.
    return table.select(["item", *names]).sort_by("item")


def _new_pairs(
    graph: Graph, interactions: Path | None, new_ids: pa.Array, cols: InteractionColumns
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(context, new item offset, weight) of the new items' interactions.

    Rows naming an item that is not new, or a user the graph does not know, are left
    out (a new user has no vector to recommend with): counted and logged.
    """
    empty = np.empty(0, np.int64)
    if interactions is None:
        return empty, empty, np.empty(0, np.float32)
    parts, dropped = [], 0
    for batch in iter_interactions(interactions, cols):
        item = pc.index_in(batch.item, value_set=new_ids)
        ctx = pc.index_in(batch.user, value_set=graph.context_ids)
        kept = pc.and_(pc.is_valid(item), pc.is_valid(ctx)).to_numpy(
            zero_copy_only=False
        )
        dropped += int((~kept).sum())
        weight = (
            np.ones(len(kept), np.float32) if batch.weight is None else batch.weight
        )
        parts.append(
            (
                ctx.to_numpy(zero_copy_only=False)[kept].astype(np.int64),
                item.to_numpy(zero_copy_only=False)[kept].astype(np.int64),
                weight[kept],
            )
        )
    if dropped:
        log.warning(
            "%s: %d interactions name an item that is not new or an unknown user; "
            "left them out",
            interactions,
            dropped,
        )
    return tuple(np.concatenate(p) for p in zip(*parts, strict=True))


def _extended_graph(
    csr: CSRGraph, num_new: int, context: np.ndarray, new: np.ndarray, w: np.ndarray
) -> CSRGraph:
    """``csr`` with ``num_new`` items appended (index I + j) and their edges.

    Shapes: context, new (E_new,) int (new: 0..num_new-1), w (E_new,) float32.
    """
    degree = (csr.context_indptr[1:] - csr.context_indptr[:-1]).numpy()
    old_context = np.repeat(np.arange(csr.num_contexts), degree)
    return csr_from_edges(
        np.concatenate([old_context, context]),
        np.concatenate([csr.context_indices.numpy(), csr.num_items + new]),
        np.concatenate([csr.context_weights.numpy(), w]),
        csr.num_contexts,
        csr.num_items + num_new,
    )


class _Columns:
    """Feature columns in a folder, seen as `FeatureStore.from_graph` reads a graph."""

    def __init__(self, directory: Path, specs: list, num_items: int) -> None:
        self.directory, self.features, self.num_items = directory, specs, num_items

    def feature(self, name: str) -> dict:
        spec = next(s for s in self.features if s.name == name)
        return load_feature(self.directory, spec)


def _recoded(
    bags: tuple[Tensor, Tensor], vocab: pa.ChunkedArray, graph_vocab: pa.ChunkedArray
) -> tuple[Tensor, Tensor]:
    """Category codes of the new items' vocabulary -> codes of the graph's.

    A value the graph never saw has no trained row: it is left out of the item's bag.
    Shapes: bags (values (M,), offsets (N+1,)) -> (values (M',), offsets (N+1,)).
    """
    values, offsets = bags
    target = graph_vocab.combine_chunks()
    index = pc.index_in(vocab.combine_chunks().cast(target.type), value_set=target)
    mapping = pc.fill_null(index, -1).to_numpy(zero_copy_only=False)
    mapped = torch.from_numpy(mapping.astype(np.int64)).index_select(0, values)
    rows = torch.repeat_interleave(torch.arange(len(offsets) - 1), offsets.diff())
    kept = mapped >= 0
    counts = torch.bincount(rows[kept], minlength=len(offsets) - 1)
    return mapped[kept], torch.cat([offsets[:1] * 0, torch.cumsum(counts, 0)])


def _encoded(
    graph: Graph, catalogue: pa.Table, source: Path, text_buckets: int
) -> FeatureStore:
    """The new items' features, encoded as the graph encodes its own."""
    kinds = {s.name: s.kind for s in graph.features}
    with tempfile.TemporaryDirectory() as tmp:
        specs = write_features(catalogue, Path(tmp), source, kinds)
        columns = _Columns(Path(tmp), specs, catalogue.num_rows)
        new = FeatureStore.from_graph(columns, text_buckets=text_buckets)
        categorical = dict(new.categorical)
        for ours, spec in zip(graph.features, specs, strict=True):
            if spec.kind == "vector" and spec.dim != ours.dim:
                raise DataError(
                    f"{source}: column '{spec.name}' holds vectors of length "
                    f"{spec.dim}; the graph's are {ours.dim} long."
                )
            if spec.kind == "categorical":
                categorical[spec.name] = _recoded(
                    new.categorical[spec.name],
                    columns.feature(spec.name)["vocab"],
                    graph.feature(spec.name)["vocab"],
                )
    return replace(new, categorical=categorical)


def _appended(old: FeatureStore, new: FeatureStore) -> FeatureStore:
    """``old``'s rows, then ``new``'s (old standardisation statistics kept)."""

    def bags(a: tuple[Tensor, Tensor], b: tuple[Tensor, Tensor]) -> tuple:
        return torch.cat([a[0], b[0]]), torch.cat([a[1], b[1][1:] + a[1][-1]])

    return replace(
        old,
        num_items=old.num_items + new.num_items,
        dense=torch.cat([old.dense, new.dense]),
        vectors={k: torch.cat([v, new.vectors[k]]) for k, v in old.vectors.items()},
        categorical={
            k: bags(v, new.categorical[k]) for k, v in old.categorical.items()
        },
        text={k: bags(v, new.text[k]) for k, v in old.text.items()},
    )


@torch.no_grad()
def _grow_id_rows(model: PinSageModel, count: int) -> None:
    """Append ``count`` zero ID rows: new items, like cold ones, have no ID vector."""
    table = model.projector.emb_id
    if table is None:
        return
    grown = nn.Embedding(table.num_embeddings + count, table.embedding_dim)
    grown.weight.zero_()
    grown.weight[: table.num_embeddings] = table.weight
    model.projector.emb_id = grown
    model.projector.num_items += count


class _ChunkedNeighbors:
    """Rows of the whole neighbourhood table, each seeded chunk drawn once."""

    def __init__(self, csr: CSRGraph, cfg) -> None:
        self.csr, self.cfg, self.chunks = csr, cfg, {}

    def _chunk(self, c: int) -> Neighbors:
        if c not in self.chunks:
            self.chunks[c] = neighborhood_table(
                self.csr, self.cfg, start=c * CHUNK, stop=(c + 1) * CHUNK
            )
        return self.chunks[c]

    def __call__(self, dst: Tensor) -> Neighbors:
        """Shapes: dst (N,) item indices -> Neighbors (N, top_k)."""
        chunk = dst // CHUNK
        first = self._chunk(int(chunk[0]))
        out = Neighbors(*(part.new_zeros((len(dst), part.shape[1])) for part in first))
        out.ids.fill_(-1)
        for c in torch.unique(chunk).tolist():
            rows = torch.nonzero(chunk == c).squeeze(1)
            local = dst.index_select(0, rows) - c * CHUNK
            for part, table in zip(out, self._chunk(c), strict=True):
                part[rows] = table.index_select(0, local)
        return out


@torch.no_grad()
def _embed(
    model: PinSageModel, store: FeatureStore, neighbors: _ChunkedNeighbors, seeds
) -> Tensor:
    """Shapes: seeds (N,) item indices -> (N, out_dim)."""
    out = []
    for lo in range(0, len(seeds), BATCH):
        cg = build_blocks(seeds[lo : lo + BATCH], model.num_layers, neighbors)
        out.append(model(cg, store.gather(cg.input_nodes)))
    return torch.cat(out)


def _inputs_key(checkpoint: Path, graph: Graph, sources: dict[str, Path]) -> dict:
    """What an embeddings folder of new items was made from (its manifest's key)."""
    return {
        "checkpoint_sha256": file_sha256(checkpoint),
        "graph_sources": graph.manifest.sources,
        "new_items": {
            k: {"path": str(p), "sha256": file_sha256(p)} for k, p in sources.items()
        },
    }


def _extended(
    graph: Graph, model: PinSageModel, store: FeatureStore, sources: dict[str, Path]
) -> tuple[pa.Array, FeatureStore, CSRGraph, tuple[np.ndarray, ...]]:
    """The new items appended to the graph, the model's ID rows and the features.

    Returns (new ids, the extended feature store, the extended CSR, the new items'
    (context, new item offset, weight) interactions). The model's ID table grows
    in place.
    """
    items = sources["items"]
    columns = InteractionColumns(**(graph.manifest.options or {}).get("columns", {}))
    catalogue = _catalogue(graph, items, columns.catalogue_id)
    new_ids = catalogue.column("item").combine_chunks()
    store = _appended(store, _encoded(graph, catalogue, items, store.text_buckets))
    _grow_id_rows(model, len(new_ids))
    pairs = _new_pairs(graph, sources.get("interactions"), new_ids, columns)
    csr = _extended_graph(graph.csr, len(new_ids), *pairs)
    return new_ids, store, csr, pairs


def embed_new_items(
    run_dir: Path,
    graph_dir: Path,
    items: Path,
    out: Path,
    *,
    interactions: Path | None = None,
    overwrite: bool = False,
) -> EmbeddingsManifest:
    """Embed the items of ``items`` (not in the graph) with the run's latest checkpoint.

    ``items`` is an items file with the graph's feature columns; ``interactions``
    (optional) holds the new items' interactions with users the graph knows. Both
    use the column names the graph was built with (`pinsage graph build`). Writes
    an embeddings folder of the new items alone to ``out`` (temporary sibling, then
    rename) and returns its manifest; a complete ``out`` for the same checkpoint,
    graph and files is left alone unless ``overwrite``.

    Raises:
        DataError: an id already in the graph, a missing feature column, a vector of
            another length, or an unreadable file.
        CheckpointError: no checkpoint, or one trained on another graph.
    """
    out, phases = Path(out), Phases()
    path = latest_checkpoint_path(run_dir)
    graph = load_graph(graph_dir)
    sources = {"items": Path(items)}
    if interactions is not None:
        sources["interactions"] = Path(interactions)
    key = _inputs_key(path, graph, sources)
    if (existing := reusable_manifest(out, key, False, overwrite)) is not None:
        log.info("%s already holds these new items' embeddings; nothing to do", out)
        return existing
    run = load_run(run_dir, graph, where=path)
    model, store, cfg = run.model, run.store, run.config
    fit_torch_threads(cfg.execution.torch_threads)  # as `embed` does
    new_ids, store, csr, pairs = _extended(graph, model, store, sources)
    num_new = len(new_ids)
    phases.done("load")
    seeds = torch.arange(graph.num_items, graph.num_items + num_new)
    neighbors = _ChunkedNeighbors(csr, cfg.sampler.for_inference())
    z = _embed(model, store, neighbors, seeds)
    phases.done("neighbourhoods and layers")
    with atomic_dir(out, overwrite=True) as tmp:
        count, dim = write_parts(tmp, "item", new_ids, matrix_batches(z.numpy()))
        manifest = EmbeddingsManifest(
            count=count,
            dim=dim,
            **key,
            with_interactions=int(len(pairs[0])),
            checkpoint=str(path),
            step=run.step,
            graph=str(graph.path),
            engine="local",
            seed=cfg.sampler.seed,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds=phases.seconds,
        )
        publish(tmp, manifest.to_json())
    log.info(
        "embedded %d new items (%d interactions with known users) into %s",
        count,
        manifest.with_interactions,
        out,
    )
    return manifest
