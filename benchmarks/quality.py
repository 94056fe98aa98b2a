"""Retrieval quality with honest model selection, beside training-free baselines.

Gowalla (``--dataset gowalla``, the LightGCN split under ``--data``, default
../shared/data; said so when missing) or a synthetic graph with planted clusters
(``--dataset synthetic``: 20k items, 10k users, 400k interactions, 20 clusters, item
features), or MovieLens-format files with genre tastes (``--dataset movielens-like``:
`movielens_like.py`'s 3,000 movies and 150,000 ratings through the MovieLens importer
with ``configs/movielens.yaml``: ratings >= 4, a temporal split, the newest 10% of
movies cold, so their figures come from features alone). Each variant and seed is
`pinsage pipeline` under .bench/: a validation split carved from the training
interactions (``data.validation_share`` of each user's), training on the rest with
validation recall@20 after every epoch (the learning curve), then the test file read
once, on the full training graph. The
baselines (popularity, cosine item-kNN, GF-CF) are ranked on the same graph and test
file in the same invocation. ``--served`` also embeds every node, builds the FAISS
index and measures recall@20 of `Index.recommend`, which must match the evaluation.

    python benchmarks/quality.py [--dataset gowalla|synthetic|movielens-like]
        [--data DIR] [--config FILE] [--set section.key=value ...]
        [--epochs N] [--steps N] [--seeds N] [--first-seed S]
        [--ablation [--only VARIANT ...]]
        [--served] [--no-baselines] [--selection | --refit] [--data-seed S]

``--selection`` is for choosing a setting: it trains and reports the validation
curve only, and never reads the test file (nor ranks the baselines on it).
``--refit`` is the last step of the protocol: once the recipe and its epochs are
chosen on the validation curve, train on the whole training file (no validation
share held out, so no curve) and read the test file once.

``--data-seed`` (movielens-like) generates another draw of the files. The validation
split holds no cold items (they have no training interactions to carve), so
cold-start settings are chosen on another draw (``--data-seed 1``) and reported on
the default one (seed 0).

Prints JSON lines: the setting, the baselines, one line per (variant, seed), and a
summary per variant (mean and half-range over seeds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, ONE_CLUSTER_EACH, emit, machine  # noqa: E402
from movielens_like import write_movielens_like  # noqa: E402

from pinsage.config import (  # noqa: E402
    BASELINES,
    PipelineConfig,
    load_config,
    load_section,
)
from pinsage.data.synth import SynthConfig  # noqa: E402
from pinsage.eval.job import evaluate_baselines, read_test_csr  # noqa: E402
from pinsage.graph import load_graph  # noqa: E402
from pinsage.index.search import Index  # noqa: E402
from pinsage.pipeline import RunRoot, run_pipeline  # noqa: E402
from pinsage.report.published import GOWALLA  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC = SynthConfig(
    num_items=20_000,
    num_users=10_000,
    num_edges=400_000,
    num_clusters=20,
    seed=1,
    **ONE_CLUSTER_EACH,
)
MOVIELENS_COLD = 0.1  # share of the newest movies made cold (--dataset movielens-like)
ABLATIONS = {  # the PinSage paper's: pooling, the hard-negative curriculum, top-T
    "mean-pooling": "model.aggregator=mean",
    "no-hard-negatives": "train.max_hard_negatives=0",
    "top-10": "sampler.top_k=10",
    "top-50": "sampler.top_k=50",
}


def override(cfg: PipelineConfig, assignments: list[str]) -> PipelineConfig:
    """``section.key=value`` assignments (values parsed as YAML), validated."""
    raw = asdict(cfg)
    for assignment in assignments:
        path, _, value = assignment.partition("=")
        section, _, key = path.partition(".")
        raw[section][key] = yaml.safe_load(value)
    return load_section(PipelineConfig, raw, "--set")


def _config(args) -> PipelineConfig | None:
    if args.dataset == "gowalla":
        source = args.data / "gowalla"
        if not (source / "train.txt").exists():
            emit({"bench": "quality", "skipped": f"no Gowalla data at {source}"})
            return None
        cfg = load_config(args.config or ROOT / "configs" / "gowalla.yaml")
        data = replace(cfg.data, path=str(source), format="lightgcn")
        cfg = replace(cfg, data=data)
    elif args.dataset == "movielens-like":
        seed = args.data_seed
        source = write_movielens_like(CACHE / f"movielens-like-s{seed}", seed=seed)
        cfg = load_config(args.config or ROOT / "configs" / "movielens.yaml")
        data = replace(cfg.data, path=str(source), cold_items=MOVIELENS_COLD)
        cfg = replace(cfg, data=data)
    else:
        cfg = load_config(
            args.config or Path(__file__).with_name("quality-synthetic.yaml")
        )
        cfg = replace(cfg, data=replace(cfg.data, path=None), synth=SYNTHETIC)
    train = {"epochs": args.epochs, "steps_per_epoch": args.steps}
    train = {k: v for k, v in train.items() if v}
    cfg = replace(cfg, train=replace(cfg.train, **train))
    if args.refit:
        cfg = replace(cfg, data=replace(cfg.data, validation_share=0.0))
    return override(cfg, args.set)


def served_recall(root: Path, k: int = 20) -> float:
    """recall@k of `Index.recommend` for every test user, by the eval protocol."""
    paths = RunRoot(root, PipelineConfig())
    index = Index.load(paths.index)
    graph = load_graph(paths.graph)
    indptr, items, _ = read_test_csr(paths.data / "test.parquet", graph)
    users = torch.nonzero(indptr[1:] > indptr[:-1]).flatten().numpy()
    user_ids = np.asarray(graph.context_ids.take(users).to_pylist(), dtype=object)
    item_ids = np.asarray(graph.item_ids.to_pylist(), dtype=object)
    recalls = []
    for start in range(0, len(users), 4096):
        batch = users[start : start + 4096]
        got, _ = index.recommend(list(user_ids[start : start + 4096]), k)
        for row, user in zip(got, batch, strict=True):
            held = set(item_ids[items[indptr[user] : indptr[user + 1]].numpy()])
            recalls.append(len(held & set(row.tolist())) / len(held))
    return float(np.mean(recalls))


def _curve(root: Path, batch_size: int) -> list[list[float]]:
    """(training minutes, validation recall@20) after each evaluation."""
    rows = [json.loads(line) for line in (root / "run/metrics.jsonl").open()]
    return [
        [
            round(r["step"] * batch_size / r["pairs_per_s"] / 60, 2),
            round(r["recall@20"], 4),
        ]
        for r in rows
        if "recall@20" in r
    ]


def run_variant(cfg: PipelineConfig, name: str, seed: int, args) -> dict:
    cfg = replace(
        cfg,
        train=replace(cfg.train, seed=seed),
        eval=replace(cfg.eval, baselines=()),  # ranked once, in main
        embed=replace(cfg.embed, engine="local"),  # the same vectors as Ray's, tested
    )
    root = CACHE / f"quality-{args.dataset}-{name}-s{seed}-{int(time.time())}"
    stages = ("data", "graph", "train") + (() if args.selection else ("eval",))
    manifest = run_pipeline(cfg, root, stages=stages)
    curve = _curve(root, cfg.train.batch_size)
    record = {
        "bench": "quality",
        "dataset": args.dataset,
        "variant": name,
        "seed": seed,
        "refit": args.refit,
        "validation_recall@20": curve[-1][1] if curve else None,
        "best_validation_recall@20": max((v for _, v in curve), default=None),
        "validation_curve": curve,
        "train_minutes": round(manifest.stages["train"].seconds / 60, 1),
        "steps": cfg.train.last_step,
        "root": str(root),
    }
    if args.selection:  # choosing a setting: the test file stays unread
        return record
    result = json.loads((root / "run/eval.json").read_text())
    record |= {k: round(result[k], 4) for k in ("recall@20", "ndcg@20")}
    cold = (
        "warm_recall@20",
        "cold_recall@20",
        "cold_only_recall@20",
        "cold_top_share@20",
        "cold_test_share",
    )
    record |= {k: round(result[k], 4) for k in cold if k in result}
    if args.served:
        run_pipeline(cfg, root, stages=("embed", "index"))
        record["served_recall@20"] = round(served_recall(root), 4)
    return record


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset",
        choices=["gowalla", "synthetic", "movielens-like"],
        default="gowalla",
    )
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=V")
    parser.add_argument(
        "--epochs", type=int, default=None, help="override train.epochs"
    )
    parser.add_argument(
        "--steps", type=int, default=None, help="override steps_per_epoch"
    )
    parser.add_argument("--seeds", type=int, default=1, help="this many train seeds")
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="train seeds S..S+N-1 (to add seeds to an earlier run)",
    )
    parser.add_argument(
        "--data-seed", type=int, default=0, help="movielens-like: the files' seed"
    )
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--only", action="append", default=None, help="these variants")
    parser.add_argument(
        "--served", action="store_true", help="recall through the index"
    )
    parser.add_argument("--no-baselines", action="store_true")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument(
        "--selection",
        action="store_true",
        help="model selection: validation figures only, the test file is not read",
    )
    chosen.add_argument(
        "--refit",
        action="store_true",
        help="the chosen recipe on the whole training file (no validation split)",
    )
    return parser


def _baselines_record(dataset: str, root: Path, variant: PipelineConfig) -> dict:
    """The training-free baselines on a run's graph and test file."""
    paths = RunRoot(root, variant)
    baselines = evaluate_baselines(
        load_graph(paths.graph),
        paths.data / "test.parquet",
        variant.eval.baselines or BASELINES,
    )
    return {"bench": "quality", "dataset": dataset, "baselines": baselines}


def _summary(name: str, records: list[dict], args: argparse.Namespace) -> dict:
    """Mean and half-range over the seeds of every figure the runs measured."""
    summary = {
        "bench": "quality",
        "dataset": args.dataset,
        "variant": name,
        "seeds": args.seeds,
    }
    keys = ["train_minutes"] + ([] if args.refit else ["validation_recall@20"])
    keys += [] if args.selection else ["recall@20", "ndcg@20"]
    for key in keys:
        values = np.array([r[key] for r in records])
        summary[key] = {
            "mean": round(float(values.mean()), 4),
            "half_range": round(float(np.ptp(values) / 2), 4),
        }
    return summary


def main() -> None:
    args = _arguments().parse_args()
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    cfg = _config(args)
    if cfg is None:
        return
    reference = {"published": GOWALLA.rows} if args.dataset == "gowalla" else {}
    emit(
        {
            "bench": "quality",
            "dataset": args.dataset,
            "machine": machine(),
            "config": asdict(cfg),
            **reference,
        }
    )
    variants = {"pinsage": cfg}
    if args.ablation:
        variants |= {n: override(cfg, [a]) for n, a in ABLATIONS.items()}
    baselines_done = args.no_baselines or args.selection
    for name, variant in variants.items():
        if args.only and name not in args.only:
            continue
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        records = [run_variant(variant, name, seed, args) for seed in seeds]
        for record in records:
            emit(record)
        if not baselines_done:
            emit(_baselines_record(args.dataset, Path(records[0]["root"]), variant))
            baselines_done = True
        emit(_summary(name, records, args))


if __name__ == "__main__":
    main()
