"""Retrieval quality: Gowalla (LightGCN split) next to the published figures, or a
synthetic graph with planted clusters next to the popularity baseline.

Gowalla: imports ``--data/gowalla`` (default ../shared/data), builds the graph, trains
with ``--config`` (default configs/gowalla.yaml). Synthetic (``--dataset synthetic``):
generates 20k items / 10k users / 400k interactions in 20 clusters and trains with
benchmarks/quality-synthetic.yaml. Both evaluate recall@20 / NDCG@20 with the LightGCN
protocol (full ranking over all items minus the user's training items).
``--ablation`` also trains the variants: mean instead of importance pooling, no hard
negatives, and the max-margin loss. Prints JSON lines; outputs go under .bench/.

    python benchmarks/quality.py [--dataset gowalla|synthetic] [--data ../shared/data]
                                 [--ablation [--only VARIANT ...]] [--epochs N]
                                 [--steps N] [--config FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine  # noqa: E402

from pinsage.config import load_config  # noqa: E402
from pinsage.data.importers import import_lightgcn  # noqa: E402
from pinsage.data.synth import SynthConfig, synthesize  # noqa: E402
from pinsage.eval.job import evaluate_run, popularity_baseline  # noqa: E402
from pinsage.graph import build_graph, load_graph  # noqa: E402
from pinsage.report.published import GOWALLA  # noqa: E402
from pinsage.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# LightGCN (He et al., SIGIR 2020) Table 3, Gowalla: recall@20, ndcg@20.
PUBLISHED = GOWALLA.rows  # (recall@20, ndcg@20) by model


def _variants(cfg, ablation: bool) -> dict:
    variants = {"pinsage": cfg}
    if ablation:
        variants["mean-pooling"] = replace(
            cfg, model=replace(cfg.model, aggregator="mean")
        )
        variants["no-hard-negatives"] = replace(
            cfg, train=replace(cfg.train, max_hard_negatives=0)
        )
        variants["margin-loss"] = replace(cfg, train=replace(cfg.train, loss="margin"))
    return variants


def _gowalla(args) -> tuple[Path, Path, dict] | None:
    source = args.data / "gowalla"
    if not (source / "train.txt").exists():
        emit(
            {"bench": "quality", "skipped": f"no Gowalla data at {source} (see --data)"}
        )
        return None
    data = import_lightgcn(source, CACHE / "gowalla-data")
    graph = CACHE / "gowalla-graph"
    build_graph(data / "interactions.parquet", graph)
    return graph, data / "test.parquet", {"published": PUBLISHED}


def _synthetic() -> tuple[Path, Path, dict]:
    synth = SynthConfig(
        num_items=20_000, num_users=10_000, num_edges=400_000, num_clusters=20, seed=1
    )
    data = synthesize(synth, CACHE / "quality-synth-data")
    graph = CACHE / "quality-synth-graph"
    build_graph(data / "interactions.parquet", graph, items=data / "items.parquet")
    popularity = popularity_baseline(load_graph(graph), data / "test.parquet", (20,))
    return graph, data / "test.parquet", {"popularity": popularity}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", choices=["gowalla", "synthetic"], default="gowalla"
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument(
        "--epochs", type=int, default=None, help="override train.epochs"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="override steps_per_epoch"
    )
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument(
        "--only", action="append", default=None, help="train just these variants"
    )
    args = parser.parse_args()
    default = (
        ROOT / "configs" / "gowalla.yaml"
        if args.dataset == "gowalla"
        else Path(__file__).with_name("quality-synthetic.yaml")
    )
    cfg = load_config(args.config or default)
    overrides = {"epochs": args.epochs, "steps_per_epoch": args.steps}
    cfg = replace(
        cfg, train=replace(cfg.train, **{k: v for k, v in overrides.items() if v})
    )
    prepared = _gowalla(args) if args.dataset == "gowalla" else _synthetic()
    if prepared is None:
        return
    graph, test, reference = prepared
    emit(
        {"bench": "quality", "dataset": args.dataset, "machine": machine(), **reference}
    )
    for name, variant in _variants(cfg, args.ablation).items():
        if args.only and name not in args.only:
            continue
        # The pid keeps concurrent runs (probes of several configs) apart.
        run = CACHE / f"quality-{args.dataset}-{name}-{int(time.time())}-{os.getpid()}"
        t0 = time.perf_counter()
        train(variant, graph, run)
        seconds = time.perf_counter() - t0
        metrics = evaluate_run(run, graph, test, ks=(20,))
        record = {
            "bench": "quality",
            "dataset": args.dataset,
            "variant": name,
            "recall@20": metrics["recall@20"],
            "ndcg@20": metrics["ndcg@20"],
            "hit_rate@10": metrics["hit_rate@10"],
            "users": metrics["users"],
            "train_seconds": round(seconds, 1),
            "steps": variant.train.epochs * variant.train.steps_per_epoch,
        }
        if args.dataset == "gowalla":
            record["vs_pinsage_0.138"] = round(metrics["recall@20"] / 0.138, 3)
            record["vs_lightgcn_0.183"] = round(metrics["recall@20"] / 0.183, 3)
        else:
            pop = reference["popularity"]["recall@20"]
            record["vs_popularity"] = round(metrics["recall@20"] / pop, 3)
        emit(record)


if __name__ == "__main__":
    main()
