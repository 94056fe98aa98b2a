"""Data-parallel scaling: pairs/s of training with 1 worker (the single-process loop)
against 2 DDP workers under Ray Train (gloo, CPU), on one synthetic graph and config,
in one run. Each worker trains ``train.batch_size`` pairs a step, so 2 workers train
twice the pairs per step; pairs/s counts them all. Ray starts once (2 CPUs) and is
reused; ``wall_s`` includes starting the workers, ``pairs_per_s`` is the loop's own
rate (rank 0's). Torch threads: 1 worker uses torch's default, each of N workers
cores // N. Prints JSON lines, the machine first; the figures are medians of
interleaved repeats.

    python benchmarks/train_scaling.py [--steps 60] [--repeats 3] [--workers 2]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, LOADER_BATCH, emit, loader_workload, machine  # noqa: E402

from pinsage.train import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    import ray

    graph, cfg = loader_workload(args.steps)
    emit(
        {
            "bench": "train_scaling",
            "machine": machine(),
            "steps": args.steps,
            "batch_size_per_worker": LOADER_BATCH,
        }
    )
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    counts = (1, args.workers)
    results: dict[int, list[tuple[dict, float]]] = {n: [] for n in counts}
    try:
        for repeat in range(args.repeats):
            for workers in counts:  # interleaved
                run = CACHE / f"scaling-{workers}-{repeat}"
                shutil.rmtree(run, ignore_errors=True)
                t0 = time.perf_counter()
                record = train(cfg.executed(workers=workers), graph, run)
                results[workers].append((record, time.perf_counter() - t0))
                shutil.rmtree(run, ignore_errors=True)
    finally:
        ray.shutdown()
    pairs = {
        n: statistics.median(r["pairs_per_s"] for r, _ in results[n]) for n in counts
    }
    for n in counts:
        emit(
            {
                "bench": "train_scaling",
                "workers": n,
                "pairs_per_s": pairs[n],
                "wall_s": round(statistics.median(w for _, w in results[n]), 1),
                "final_loss": statistics.median(r["loss"] for r, _ in results[n]),
            }
        )
    emit(
        {
            "bench": "train_scaling",
            "speedup": f"{args.workers} vs 1 workers",
            "ratio": round(pairs[args.workers] / pairs[1], 2),
        }
    )


if __name__ == "__main__":
    main()
