"""Producer-consumer loader: pairs/s and producer wait for inline, thread and process
producers, on the same synthetic graph and config, in one run. Prints JSON lines.

    python benchmarks/loader.py [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine, synthetic_graph  # noqa: E402

from pinsage.config import PipelineConfig, SamplerConfig, TrainConfig  # noqa: E402
from pinsage.train import train  # noqa: E402

VARIANTS = {"inline": (0, "thread"), "thread": (1, "thread"), "process": (1, "process")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    graph = synthetic_graph(20_000, 10_000, 500_000)
    base = PipelineConfig(
        sampler=SamplerConfig(num_walks=30, top_k=10),
        train=TrainConfig(
            epochs=1,
            steps_per_epoch=args.steps,
            batch_size=512,
            checkpoint_every=0,
            max_hard_negatives=0,
        ),
    )
    emit(
        {
            "bench": "loader",
            "machine": machine(),
            "steps": args.steps,
            "batch_size": 512,
        }
    )
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name, (workers, kind) in VARIANTS.items():  # interleaved against drift
            run = CACHE / f"loader-{name}-{repeat}"
            shutil.rmtree(run, ignore_errors=True)
            cfg = replace(base, train=replace(base.train, num_workers=workers))
            results[name].append(train(cfg, graph, run, worker_kind=kind))
            shutil.rmtree(run, ignore_errors=True)
    inline = statistics.median(r["pairs_per_s"] for r in results["inline"])
    for name, records in results.items():
        pairs = statistics.median(r["pairs_per_s"] for r in records)
        emit(
            {
                "bench": "loader",
                "producers": name,
                "pairs_per_s": pairs,
                "producer_wait": statistics.median(r["producer_wait"] for r in records),
                "speedup_vs_inline": round(pairs / inline, 2),
            }
        )


if __name__ == "__main__":
    main()
