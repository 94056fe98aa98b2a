"""Build a FAISS index over an embeddings folder, with its recall measured.

Inner product on L2-normalised vectors (cosine), through `faiss.index_factory`:

- ``flat``: exact search (``Flat``);
- ``hnsw``: ``HNSW{M}``, ``efSearch`` tuned on the data;
- ``ivfpq``: ``IVF{nlist},PQ{m}np,RFlat``: ``nlist`` about 4 sqrt(N) (FAISS's guideline
  for up to a few million vectors), trained on a sample of 256 points a list (at
  most `TRAIN_MAX` points in all), ``m`` =
  d / 4 one-byte sub-quantizers (32 bytes a vector at d = 128) that shortlist
  ``k_factor_rf`` x k candidates, re-ranked exactly (PQ distances alone stop near
  0.6 recall@10); ``nprobe`` and ``k_factor_rf`` tuned on the data. ``np``: no
  polysemous training, which only serves Hamming-filtered search (never used here)
  and cost about 27 s a build at any catalogue size.
- ``auto``: exact up to `FLAT_MAX` vectors (a brute-force scan is fast there), HNSW
  up to `HNSW_MAX` (its graph and full vectors must fit in memory), IVF-PQ beyond.

Tuning raises ``efSearch`` / ``nprobe`` (cheapest settings first) until recall@10
against exact search reaches `RECALL_TARGET`, over a fixed sample of the catalogue's
own items as queries, each query's own row left out as `Index.search` leaves it out;
the manifest records the setting and the recall measured with it.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.atomic import atomic_dir, publish
from pinsage.config import INDEX_KINDS
from pinsage.errors import ConfigError, IndexBuildError
from pinsage.index.backend import exact_index, faiss, gpu_training, use_gpu
from pinsage.index.contexts import context_graph, exclude_rows, write_contexts
from pinsage.infer.output import read_embeddings
from pinsage.manifests import EmbeddingsManifest, IndexManifest

__all__ = [
    "FLAT_MAX",
    "HNSW_MAX",
    "INDEX_FILE",
    "KINDS",
    "IDS_FILE",
    "IndexPlan",
    "build_index",
    "plan_index",
    "recall_at",
]

log = logging.getLogger(__name__)

KINDS = INDEX_KINDS
FLAT_MAX = 50_000  # a scan of 50k x 128 floats is about a millisecond a query
HNSW_MAX = 2_000_000  # HNSW32 at d = 128: ~770 bytes a vector, 1.5 GB at 2M
HNSW_M = 32
RECALL_TARGET = 0.95
RECALL_K = 10  # IndexManifest.recall_at_10
RECALL_QUERIES = 1000
TRAIN_PER_LIST = 256  # training sample per list (FAISS suggests 30 to 256)
TRAIN_MAX = 300_000  # k-means cost grows with sample x lists; 75 a list at 1M is plenty
MIN_PER_LIST = 39  # FAISS warns below this many training points a list
EF_SEARCH = (16, 32, 64, 128, 256, 512)
REFINE_FACTORS = (2, 4, 8, 16)  # IVF-PQ: candidates re-ranked exactly, x k
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.parquet"
VECTORS_FILE = "vectors.npy"


@dataclass(frozen=True)
class IndexPlan:
    """What to build: the FAISS factory string and the search parameter to tune."""

    kind: str
    factory: str
    settings: tuple[dict, ...] = ()  # search parameters to try, cheapest first
    params: dict = field(default_factory=dict)


def plan_index(kind: str, n: int, d: int) -> IndexPlan:
    """The index for ``n`` vectors of width ``d`` (``kind`` ``auto`` chooses)."""
    if kind not in KINDS:
        raise ConfigError(f"index kind must be one of {list(KINDS)}, got '{kind}'")
    if kind == "auto":
        kind = "flat" if n <= FLAT_MAX else "hnsw" if n <= HNSW_MAX else "ivfpq"
    if kind == "flat":
        return IndexPlan("flat", "Flat")
    if kind == "hnsw":
        settings = tuple({"efSearch": ef} for ef in EF_SEARCH)
        return IndexPlan("hnsw", f"HNSW{HNSW_M}", settings, {"M": HNSW_M})
    nlist = max(1, min(int(4 * math.sqrt(n)), n // MIN_PER_LIST))
    m = next(m for m in (d // 4, d // 2, d) if d % m == 0 and m > 0)
    probes = [p for p in (1, 2, 4, 8, 16, 32, 64, 128, 256) if p <= nlist] or [1]
    settings = tuple(
        {"nprobe": p, "k_factor_rf": f} for p in probes for f in REFINE_FACTORS
    )
    return IndexPlan(
        "ivfpq",
        f"IVF{nlist},PQ{m}np,RFlat",
        settings,
        {"nlist": nlist, "pq_m": m, "pq_bits": 8, "refine": "flat"},
    )


def recall_at(found: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of each query's exact neighbours that were found.

    Shapes: found (Q, k), exact (Q, k) row indices -> float.
    """
    hits = [len(set(f) & set(e)) for f, e in zip(found, exact, strict=True)]
    return float(np.mean(hits) / exact.shape[1])


def _normalised(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32).copy()
    faiss.normalize_L2(vectors)
    return vectors


def _neighbors(
    index: faiss.Index, queries: np.ndarray, own: np.ndarray, k: int
) -> np.ndarray:
    """Each query's ``k`` nearest rows other than its own (as `Index.search` answers).

    The query's own row is the easiest hit of all; counting it would flatter recall.
    Shapes: queries (Q, D), own (Q,) -> (Q, k) rows, -1 where fewer exist.
    """
    scores, rows = index.search(queries, min(k + 1, index.ntotal))
    return exclude_rows(scores, rows, np.arange(len(own) + 1), own, k)[0]


def _tune(
    index: faiss.Index,
    plan: IndexPlan,
    queries: np.ndarray,
    own: np.ndarray,
    exact: np.ndarray,
) -> tuple[dict, float]:
    """The first setting that reaches the recall target (else the last)."""
    space = faiss.ParameterSpace()
    setting: dict = {}
    for setting in plan.settings or ({},):
        for name, value in setting.items():
            space.set_index_parameter(index, name, value)
        recall = recall_at(_neighbors(index, queries, own, exact.shape[1]), exact)
        if recall >= RECALL_TARGET:
            break
    return setting, recall


def _current(
    out: Path, source: EmbeddingsManifest | None, kind: str
) -> IndexManifest | None:
    """The manifest of ``out`` when it is an index of these embeddings, this kind.

    Decided from the two manifests, before the vectors are read: a re-run on a
    complete index costs no pass over the embeddings.
    """
    if source is None:
        return None
    key = {
        "checkpoint_sha256": source.checkpoint_sha256,
        "contexts": source.contexts,
        "requested": kind,
    }
    return IndexManifest.read_current(out, key)


def _filled_index(
    x: np.ndarray, plan: IndexPlan, on_gpu: bool, rng: np.random.Generator
) -> faiss.Index:
    """The planned index, trained on a sample of ``x`` (N, D) where it needs it."""
    n, d = x.shape
    index = faiss.index_factory(d, plan.factory, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        size = min(n, plan.params["nlist"] * TRAIN_PER_LIST, TRAIN_MAX)
        with gpu_training(index) if on_gpu else contextlib.nullcontext():
            index.train(x[np.sort(rng.choice(n, size, replace=False))])
    index.add(x)
    return index


def _measured(
    index: faiss.Index,
    plan: IndexPlan,
    x: np.ndarray,
    on_gpu: bool,
    rng: np.random.Generator,
) -> tuple[dict, float, int]:
    """(search parameters, recall@`RECALL_K` against exact search, queries used)."""
    n, d = x.shape
    own = np.sort(rng.choice(n, min(n, RECALL_QUERIES), replace=False))
    queries = x[own]
    exact_search = exact_index(d, on_gpu)
    exact_search.add(x)
    exact = _neighbors(exact_search, queries, own, RECALL_K)
    del exact_search  # a copy of every vector
    search_params, recall = _tune(index, plan, queries, own, exact)
    return search_params, recall, len(queries)


def _check_target(embeddings: Path, out: Path, n: int, overwrite: bool) -> None:
    """Refuse an empty embeddings folder, or an ``out`` that is not this index."""
    if n == 0:
        raise IndexBuildError(f"{embeddings} holds no vectors; nothing to index.")
    if out.exists() and not overwrite:
        raise ConfigError(
            f"{out} exists but is not an index of these embeddings; pass "
            "`--overwrite` to replace it, or choose another folder."
        )


def _log_built(manifest: IndexManifest) -> None:
    log.info(
        "index %s (%s) of %d vectors built in %.1fs; recall@%d %.4f with %s",
        manifest.kind,
        manifest.factory,
        manifest.count,
        manifest.build_seconds,
        RECALL_K,
        manifest.recall_at_10,
        manifest.search_params or "exact search",
    )


def build_index(
    embeddings: Path,
    out: Path,
    *,
    kind: str = "auto",
    gpu: bool | None = None,
    graph: Path | None = None,
    overwrite: bool = False,
    seed: int = 0,
) -> IndexManifest:
    """Index the vectors of a complete embeddings folder into ``out``; its manifest.

    ``out`` holds `INDEX_FILE`, `IDS_FILE` (row -> item id), `VECTORS_FILE` (the
    normalised vectors, memory-mappable: the queries of `Index.search` by item),
    ``manifest.json`` and ``_SUCCESS``, written to a temporary sibling and renamed.
    When the embeddings hold context vectors, ``out`` also holds them with each
    context's training items, read from ``graph`` (default: the graph the
    embeddings came from), for `Index.recommend`. ``gpu``: see
    `pinsage.index.backend.use_gpu`. A complete ``out`` built from the same
    embeddings with the same kind is left alone unless ``overwrite``.
    """
    embeddings, out = Path(embeddings), Path(out)
    source = EmbeddingsManifest.read(embeddings)
    if not overwrite and (previous := _current(out, source, kind)) is not None:
        log.info("index %s is complete for these embeddings; nothing to do", out)
        return previous
    ids, vectors = read_embeddings(embeddings)  # DataError when incomplete
    n, d = vectors.shape
    _check_target(embeddings, out, n, overwrite)
    graph = context_graph(embeddings, source, graph)
    plan, on_gpu, rng = (
        plan_index(kind, n, d),
        use_gpu(gpu),
        np.random.default_rng(seed),
    )
    t0 = time.perf_counter()
    x = _normalised(vectors)
    index = _filled_index(x, plan, on_gpu, rng)
    build_seconds = time.perf_counter() - t0
    search_params, recall, num_queries = _measured(index, plan, x, on_gpu, rng)
    manifest = IndexManifest(
        kind=plan.kind,
        requested=kind,
        factory=plan.factory,
        dim=d,
        count=n,
        build_params=plan.params,
        search_params=search_params,
        recall_at_10=round(recall, 4),
        recall_queries=num_queries,
        build_seconds=round(build_seconds, 2),
        device="gpu" if on_gpu else "cpu",
        embeddings=str(embeddings.resolve()),
        checkpoint_sha256=source.checkpoint_sha256 if source else None,
        seed=seed,
    )
    _log_built(manifest)
    with atomic_dir(out, overwrite=True) as tmp:
        faiss.write_index(index, str(tmp / INDEX_FILE))
        pq.write_table(pa.table({"item": ids}), tmp / IDS_FILE)
        np.save(tmp / VECTORS_FILE, x)
        if graph is not None:
            contexts = write_contexts(tmp, embeddings, graph, ids)
            manifest = replace(manifest, contexts=contexts, graph=str(graph.resolve()))
        publish(tmp, manifest.to_json())
    return manifest
