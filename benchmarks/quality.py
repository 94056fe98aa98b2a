"""Retrieval quality on Gowalla (LightGCN split) next to the published figures.

Imports ``--data/gowalla`` (default ../shared/data), builds the graph, trains with
``--config`` (default configs/gowalla.yaml) and evaluates recall@20 / NDCG@20 with the
LightGCN protocol (full ranking over all items minus the user's training items). With
``--ablation`` it also trains the variants: mean instead of importance pooling, no hard
negatives, and the max-margin loss. Prints JSON lines; outputs go under .bench/.

    python benchmarks/quality.py [--data ../shared/data] [--ablation] [--epochs N]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine  # noqa: E402

from pinsage.config import load_config  # noqa: E402
from pinsage.data.importers import import_lightgcn  # noqa: E402
from pinsage.eval.job import evaluate_run  # noqa: E402
from pinsage.graph import build_graph  # noqa: E402
from pinsage.train import train  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# LightGCN (He et al., SIGIR 2020) Table 3, Gowalla: recall@20, ndcg@20.
PUBLISHED = {
    "LightGCN": (0.1830, 0.1554),
    "NGCF": (0.1570, 0.1327),
    "PinSage (as reported by NGCF)": (0.1380, 0.1196),
    "best published on this split (about)": (0.192, None),
}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument(
        "--config", type=Path, default=ROOT / "configs" / "gowalla.yaml"
    )
    parser.add_argument(
        "--epochs", type=int, default=None, help="override train.epochs"
    )
    parser.add_argument("--ablation", action="store_true")
    args = parser.parse_args()
    source = args.data / "gowalla"
    if not (source / "train.txt").exists():
        emit(
            {"bench": "quality", "skipped": f"no Gowalla data at {source} (see --data)"}
        )
        return
    cfg = load_config(args.config)
    if args.epochs:
        cfg = replace(cfg, train=replace(cfg.train, epochs=args.epochs))
    emit({"bench": "quality", "machine": machine(), "published": PUBLISHED})
    data = import_lightgcn(source, CACHE / "gowalla-data")
    graph = CACHE / "gowalla-graph"
    build_graph(data / "interactions.parquet", graph)
    for name, variant in _variants(cfg, args.ablation).items():
        run = CACHE / f"gowalla-run-{name}-{int(time.time())}"
        t0 = time.perf_counter()
        train(variant, graph, run)
        seconds = time.perf_counter() - t0
        metrics = evaluate_run(run, graph, data / "test.parquet", ks=(20,))
        emit(
            {
                "bench": "quality",
                "dataset": "gowalla",
                "variant": name,
                "recall@20": metrics["recall@20"],
                "ndcg@20": metrics["ndcg@20"],
                "users": metrics["users"],
                "train_seconds": round(seconds, 1),
                "epochs": variant.train.epochs,
                "steps": variant.train.epochs * variant.train.steps_per_epoch,
                "vs_pinsage_0.138": round(metrics["recall@20"] / 0.138, 3),
                "vs_lightgcn_0.183": round(metrics["recall@20"] / 0.183, 3),
            }
        )


if __name__ == "__main__":
    main()
