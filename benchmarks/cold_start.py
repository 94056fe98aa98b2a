"""Cold start: recall@20 for warm and for cold items, per seed, and what features do.

``--dataset synthetic`` (default): planted clusters, 2,000 items, 1,000 users, 40,000
interactions, 10 clusters, a share of the items cold (no training interactions:
`data synth --cold-items`). ``--dataset movielens-like``: MovieLens-format files with
genre tastes (`movielens_like.py`) through the MovieLens importer with
``--min-rating 4 --cold-items``: the newest movies are cold; it also reports how often
an item's nearest warm item (by embedding) shares a genre, for cold items, warm items
and a random warm item. 2 x 60 steps of 256 pairs; seed s generates the data and
trains. Model options go as KEY=VALUE (YAML values), e.g. ``cold_dropout=0`` or
``id_embedding=false`` (features only); ``--drop-features`` reruns with each
feature column dropped in turn (the per-group ablation). Goal (issue 17): cold
recall@20 >= half the warm one, cold share of the top-20 slots within 2x of their
share of the test interactions.
Prints one JSON line per (variant, seed) (docs/training.md "Cold start").

    python benchmarks/cold_start.py [--dataset synthetic|movielens-like]
        [--seeds 0 1] [--cold 0.1] [--model KEY=VALUE ...] [--drop-features]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, ONE_CLUSTER_EACH, emit, machine  # noqa: E402
from movielens_like import write_movielens_like  # noqa: E402

from pinsage.config import (  # noqa: E402
    ExecutionConfig,
    ModelConfig,
    PipelineConfig,
    SamplerConfig,
    TrainConfig,
)
from pinsage.data.importers import import_movielens  # noqa: E402
from pinsage.data.synth import SynthConfig, synthesize  # noqa: E402
from pinsage.eval.job import evaluator  # noqa: E402
from pinsage.graph import build_graph, load_graph  # noqa: E402
from pinsage.infer.local import embed_all  # noqa: E402
from pinsage.run import load_run  # noqa: E402
from pinsage.sampler.table import neighborhood_table  # noqa: E402
from pinsage.train import train  # noqa: E402

KEYS = (
    "recall@20",
    "warm_recall@20",
    "cold_recall@20",
    "warm_ndcg@20",
    "cold_ndcg@20",
    "cold_only_recall@20",
    "cold_only_ndcg@20",
    "cold_top_share@20",
    "cold_test_share",
)


def make_data(dataset: str, seed: int, cold: float, root: Path) -> Path:
    """A data folder with cold items: generated, or imported from MovieLens files."""
    if dataset == "synthetic":
        synth = SynthConfig(
            num_items=2000,
            num_users=1000,
            num_edges=40000,
            num_clusters=10,
            cold_items=cold,
            seed=seed,
            **ONE_CLUSTER_EACH,
        )
        return synthesize(synth, root / f"data-{seed}")
    src = write_movielens_like(root / f"movielens-{seed}", seed=seed)
    return import_movielens(
        src, root / f"data-{seed}", min_rating=4, cold_items=cold, seed=seed
    )


def genre_agreement(graph, z: torch.Tensor, items_file: Path) -> dict:
    """How often an item's nearest warm item (cosine) shares one of its genres.

    For the test's cold items (no training interaction) and for warm items (their
    nearest other warm item), beside a random warm item's rate (chance).
    """
    table = pq.read_table(items_file)
    ids, lists = table["item"].to_pylist(), table["genres"].to_pylist()
    by_id = dict(zip(ids, lists, strict=True))
    genres = [set(by_id.get(i) or []) for i in graph.item_ids.to_pylist()]
    warm = torch.nonzero(graph.csr.item_degrees() > 0).flatten()
    cold = torch.nonzero(graph.csr.item_degrees() == 0).flatten()
    rng = np.random.default_rng(0)

    def rate(queries: torch.Tensor) -> float:
        scores = z[queries] @ z[warm].T  # (Q, W)
        scores[queries[:, None] == warm[None, :]] = -torch.inf  # not itself
        nearest = warm[scores.argmax(dim=1)]
        pairs = zip(queries.tolist(), nearest.tolist(), strict=True)
        return float(np.mean([bool(genres[q] & genres[n]) for q, n in pairs]))

    sample = warm[torch.from_numpy(rng.choice(len(warm), min(2000, len(warm))))]
    others = warm[torch.from_numpy(rng.choice(len(warm), len(sample)))]
    pairs = zip(sample.tolist(), others.tolist(), strict=True)
    chance = np.mean([bool(genres[a] & genres[b]) for a, b in pairs])
    return {
        "cold_genre_match": round(rate(cold), 4) if len(cold) else None,
        "warm_genre_match": round(rate(sample), 4),
        "random_genre_match": round(float(chance), 4),
        "cold_items": len(cold),
    }


def run_seed(args, seed: int, model: dict, drop: str | None, root: Path) -> dict:
    """Build, train and evaluate one seed; the cold/warm metrics."""
    data = make_data(args.dataset, seed, args.cold, root)
    items = data / "items.parquet"
    if drop is not None:  # the ablation: the graph built without one feature column
        items = root / f"items-{seed}-without-{drop}.parquet"
        pq.write_table(
            pq.read_table(data / "items.parquet").drop_columns([drop]), items
        )
    graph_dir = root / f"graph-{seed}-{drop}"
    build_graph(data / "interactions.parquet", graph_dir, items=items, overwrite=True)
    # This benchmark's own recipe, spelled out so that its figures (docs/training.md
    # "Cold start") do not move with the embedded default: two layers, a per-user ID,
    # both objectives.
    cfg = PipelineConfig(
        sampler=SamplerConfig(
            num_walks=50,
            top_k=10,
            num_layers=2,
            infer_num_walks=None,
            infer_top_k=None,
            seed=seed,
        ),
        model=ModelConfig(
            dim=32,
            hidden_dim=32,
            out_dim=32,
            text_buckets=4096,
            **({"context_id_embedding": True} | model),
        ),
        train=TrainConfig(
            epochs=2,
            steps_per_epoch=60,
            batch_size=256,
            objective="both",
            temperature=0.07,
            in_batch_negatives=False,
            checkpoint_every=0,
            seed=seed,
        ),
        execution=ExecutionConfig(producers=0),
    )
    run = root / f"run-{seed}"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    train(cfg, graph_dir, run)
    graph = load_graph(graph_dir)
    trained = load_run(run, graph)
    run_cfg, net, store = trained.config, trained.model, trained.store
    metrics = evaluator(graph, data / "test.parquet", run_cfg)(net, store)
    record = {
        "seed": seed,
        "dropped": drop,
        "seconds": round(time.perf_counter() - t0, 1),
        **{key: round(metrics.get(key, 0.0), 4) for key in KEYS},
    }
    if args.dataset == "movielens-like":
        table = neighborhood_table(graph.csr, run_cfg.sampler.for_inference())
        z, _ = embed_all(net, store, table)
        record |= genre_agreement(graph, z, data / "items.parquet")
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--dataset", choices=["synthetic", "movielens-like"], default="synthetic"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cold", type=float, default=0.1)
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--drop-features", action="store_true", help="each feature column dropped"
    )
    args = parser.parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    model = {
        key: yaml.safe_load(value)
        for key, _, value in (item.partition("=") for item in args.model)
    }
    root = CACHE / f"cold_start-{args.dataset}"
    variants: list[str | None] = [None]
    if args.drop_features:
        data = make_data(args.dataset, args.seeds[0], args.cold, root)
        names = pq.read_schema(data / "items.parquet").names
        variants += [n for n in names if n != "item"]
    for drop in variants:
        for seed in args.seeds:
            record = run_seed(args, seed, model, drop, root)
            emit(
                {"dataset": args.dataset, "model": model, "cold": args.cold}
                | record
                | {"machine": machine()}
            )


if __name__ == "__main__":
    main()
