"""Cold start on planted clusters: recall@20 for warm and for cold items, per seed.

2,000 items, 1,000 users, 40,000 interactions, 10 clusters, a share of the items
cold (no training interactions: `data synth --cold-items`), 2 x 60 steps of 256
pairs; seed s generates the data and trains. Model options go as KEY=VALUE (YAML
values), e.g. ``cold_dropout=0`` or ``id_embedding=true``. Goal (issue 17): cold
recall@20 >= half the warm one, cold share of the top-20 slots within 2x of their
share of the test interactions. Prints one JSON line per seed (README "Cold start").

    python benchmarks/cold_start.py [--seeds 0 1] [--cold 0.1] [--model KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine  # noqa: E402

from pinsage.config import (  # noqa: E402
    ModelConfig,
    PipelineConfig,
    SamplerConfig,
    TrainConfig,
    load_section,
)
from pinsage.data.synth import SynthConfig, synthesize  # noqa: E402
from pinsage.eval.job import evaluator  # noqa: E402
from pinsage.graph import build_graph, load_graph  # noqa: E402
from pinsage.train import load_checkpoint, train  # noqa: E402
from pinsage.train.model import model_from_checkpoint  # noqa: E402

KEYS = (
    "recall@20",
    "warm_recall@20",
    "cold_recall@20",
    "warm_ndcg@20",
    "cold_ndcg@20",
    "cold_top_share@20",
    "cold_test_share",
)


def run_seed(seed: int, cold: float, model: dict, root: Path) -> dict:
    """Generate, build, train and evaluate one seed; the cold/warm metrics."""
    synth = SynthConfig(
        num_items=2000,
        num_users=1000,
        num_edges=40000,
        num_clusters=10,
        cold_items=cold,
        seed=seed,
    )
    data = synthesize(synth, root / f"data-{seed}")
    graph_dir = root / f"graph-{seed}"
    build_graph(data / "interactions.parquet", graph_dir, items=data / "items.parquet")
    cfg = PipelineConfig(
        sampler=SamplerConfig(num_walks=50, top_k=10, seed=seed),
        model=ModelConfig(
            dim=32, hidden_dim=32, out_dim=32, text_buckets=4096, **model
        ),
        train=TrainConfig(
            epochs=2,
            steps_per_epoch=60,
            batch_size=256,
            num_workers=0,
            checkpoint_every=0,
            seed=seed,
        ),
    )
    run = root / f"run-{seed}"
    shutil.rmtree(run, ignore_errors=True)
    t0 = time.perf_counter()
    train(cfg, graph_dir, run)
    checkpoint = load_checkpoint(run)
    run_cfg = load_section(PipelineConfig, checkpoint["config"], str(run))
    graph = load_graph(graph_dir)
    net, store = model_from_checkpoint(checkpoint, run_cfg, graph, run)
    metrics = evaluator(graph, data / "test.parquet", run_cfg)(net, store)
    return {
        "seed": seed,
        "seconds": round(time.perf_counter() - t0, 1),
        **{key: round(metrics.get(key, 0.0), 4) for key in KEYS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--cold", type=float, default=0.1)
    parser.add_argument("--model", nargs="*", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    model = {
        key: yaml.safe_load(value)
        for key, _, value in (item.partition("=") for item in args.model)
    }
    root = CACHE / "cold_start"
    for seed in args.seeds:
        record = run_seed(seed, args.cold, model, root)
        emit({"model": model, "cold": args.cold, **record, "machine": machine()})


if __name__ == "__main__":
    main()
