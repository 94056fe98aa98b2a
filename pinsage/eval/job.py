"""The evaluation job: a trained run + held-out interactions -> metrics.

User-to-item recall@K / NDCG@K (LightGCN protocol) with context vectors, and
item-to-item hit-rate@K / scaled MRR on held-out pairs, all from every node's
embedding computed once by the local engine over a fixed neighbourhood table. When
held-out interactions name cold items (no training interaction: features only), the
same ranking is also measured on cold and warm items apart (`pinsage.eval.cold`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch
from torch import Tensor

from pinsage.atomic import write_json
from pinsage.config import PipelineConfig
from pinsage.data.contract import InteractionColumns, iter_interactions
from pinsage.errors import ConfigError
from pinsage.eval.baselines import baseline_metrics
from pinsage.eval.cold import cold_item_mask, cold_start_metrics
from pinsage.eval.metrics import (
    heldout_item_pairs,
    item_to_item_metrics,
    ranking_metrics,
)
from pinsage.features import FeatureStore
from pinsage.graph.store import Graph, load_graph
from pinsage.infer.local import embed_all
from pinsage.run import load_run
from pinsage.sampler.table import neighborhood_table
from pinsage.seeding import generator_for
from pinsage.threads import fit_torch_threads

__all__ = [
    "check_baselines",
    "evaluate_baselines",
    "evaluate_run",
    "evaluator",
    "read_test_csr",
]

log = logging.getLogger(__name__)

ITEM_TO_ITEM_K = 10  # hit-rate@10 for the item-to-item task (DESIGN.md's eval keys)
# Item-to-item pairs scored (each against the whole catalogue): 20k keep the hit-rate's
# standard error under 0.4 points and Gowalla's evaluation at seconds, not a minute.
MAX_ITEM_PAIRS = 20_000


def read_test_csr(path: Path, graph: Graph) -> tuple[Tensor, Tensor, dict]:
    """Held-out interactions as a context -> items CSR over the graph's indices.

    Rows naming users or items the graph does not hold are dropped and counted.
    Shapes: -> (indptr (C+1,) int64, indices (E,) int64, counts).
    """
    contexts, items, read = [], [], 0
    for batch in iter_interactions(Path(path), InteractionColumns()):
        c = pc.index_in(
            batch.user.cast(graph.context_ids.type), value_set=graph.context_ids
        )
        i = pc.index_in(batch.item.cast(graph.item_ids.type), value_set=graph.item_ids)
        known = pc.and_(pc.is_valid(c), pc.is_valid(i))
        contexts.append(c.filter(known).to_numpy().astype(np.int64))
        items.append(i.filter(known).to_numpy().astype(np.int64))
        read += len(batch.user)
    ctx, itm = np.concatenate(contexts), np.concatenate(items)
    order = np.lexsort((itm, ctx))
    indptr = np.zeros(graph.num_contexts + 1, dtype=np.int64)
    np.cumsum(np.bincount(ctx, minlength=graph.num_contexts), out=indptr[1:])
    counts = {"test_rows": read, "test_rows_unknown": read - len(ctx)}
    return torch.from_numpy(indptr), torch.from_numpy(itm[order]), counts


def check_baselines(graph: Graph, names: Sequence[str]) -> None:
    """`ConfigError` when a named baseline cannot rank ``graph`` (content: features)."""
    if "content" in names and not graph.features:
        raise ConfigError(
            f"baseline 'content' ranks items by their features, but the graph in "
            f"{graph.path} has no item features; drop it from --baselines / "
            "eval.baselines, or build the graph with an items file."
        )


def evaluate_baselines(
    graph: Graph,
    test_file: Path,
    names: Sequence[str],
    ks: Sequence[int] = (20,),
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """recall/NDCG@K of training-free baselines on ``graph`` (`baseline_metrics`).

    With cold items in the test file each baseline also reports the cold-start
    metrics. ``content`` needs item features: `ConfigError` on a graph without.
    """
    check_baselines(graph, names)
    test_indptr, test_indices, _ = read_test_csr(test_file, graph)
    cold = cold_item_mask(graph.csr.item_indptr)
    return baseline_metrics(
        names,
        graph.csr.context_indptr,
        graph.csr.context_indices.long(),
        test_indptr,
        test_indices,
        graph.num_items,
        ks,
        features=FeatureStore.from_graph(graph) if "content" in names else None,
        cold=cold if bool(cold[test_indices].any()) else None,
        seed=seed,
    )


def evaluator(
    graph: Graph, test_file: Path, cfg: PipelineConfig, ks: Sequence[int] = (20,)
) -> Callable[..., dict]:
    """Prepare everything model-independent once; return ``evaluate(model, store)``."""
    t0 = time.perf_counter()
    csr = graph.csr
    test_indptr, test_indices, counts = read_test_csr(test_file, graph)
    sampler = cfg.sampler.for_inference()
    item_table = neighborhood_table(csr, sampler)
    context_table = neighborhood_table(csr, sampler, contexts=True)
    train_indptr, train_indices = csr.context_indptr, csr.context_indices.long()
    gen = generator_for(cfg.sampler.seed, 0)
    queries, targets = heldout_item_pairs(
        train_indptr, train_indices, test_indptr, test_indices, generator=gen
    )
    if queries.numel() > MAX_ITEM_PAIRS:  # a fixed random sample: same pairs every run
        keep = torch.randperm(queries.numel(), generator=gen)[:MAX_ITEM_PAIRS]
        queries, targets = queries[keep], targets[keep]
    # Items the graph holds without interactions (catalogue only): measured apart.
    cold = cold_item_mask(csr.item_indptr)
    with_cold = bool(cold[test_indices].any())
    log.info("evaluation prepared in %.1fs (%s)", time.perf_counter() - t0, counts)

    def evaluate(model, store: FeatureStore) -> dict:
        t = time.perf_counter()
        z_items, z_contexts = embed_all(model, store, item_table, context_table)
        metrics = ranking_metrics(
            z_contexts,
            z_items,
            train_indptr,
            train_indices,
            test_indptr,
            test_indices,
            ks,
        )
        metrics |= item_to_item_metrics(
            z_items[queries],
            targets,
            z_items,
            [ITEM_TO_ITEM_K, *ks],
            query_items=queries,
        )
        if with_cold:
            metrics |= cold_start_metrics(
                lambda users: z_contexts[users] @ z_items.T,  # (C, I)
                z_items.shape[0],
                train_indptr,
                train_indices,
                test_indptr,
                test_indices,
                cold,
                ks,
            )
        metrics["eval_seconds"] = round(time.perf_counter() - t, 2)
        return metrics

    return evaluate


def evaluate_run(
    run_dir: Path,
    graph_dir: Path,
    test_file: Path,
    ks: Sequence[int] = (20,),
    baselines: Sequence[str] = (),
) -> dict:
    """Evaluate a run's latest checkpoint; write ``run_dir/eval.json`` and return it.

    ``baselines`` (names from `pinsage.eval.baselines`) are ranked on the same graph
    and test file and reported under ``"baselines"``.
    """
    graph = load_graph(graph_dir)
    run = load_run(run_dir, graph)
    cfg = run.config
    fit_torch_threads(cfg.execution.torch_threads)
    metrics = evaluator(graph, test_file, cfg, ks)(run.model, run.store)
    metrics = {"step": run.step, **metrics}
    if baselines:
        metrics["baselines"] = evaluate_baselines(
            graph, test_file, baselines, ks, seed=cfg.sampler.seed
        )
    write_json(Path(run_dir) / "eval.json", metrics)
    return metrics
