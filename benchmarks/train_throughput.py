"""Training throughput: pairs/s and the consumer's wait fraction with the
producer-consumer loader (thread or process producers) against the same loop with
sampling inline (0 workers), and with per-epoch neighbourhood tables instead of walks
per batch, on one synthetic graph and config, in one run. Prints JSON lines; the
figures are medians of interleaved repeats.

    python benchmarks/train_throughput.py [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, LOADER_BATCH, emit, loader_workload, machine  # noqa: E402

from pinsage.train import train  # noqa: E402

# name: (producers, producer kind, where neighbourhoods come from)
VARIANTS = {
    "inline": (0, "thread", "batch"),
    "thread": (1, "thread", "batch"),
    "process": (1, "process", "batch"),
    "thread-epoch-tables": (1, "thread", "epoch"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    graph, base = loader_workload(args.steps)
    emit(
        {
            "bench": "train_throughput",
            "machine": machine(),
            "steps": args.steps,
            "batch_size": LOADER_BATCH,
        }
    )
    results: dict[str, list[dict]] = {name: [] for name in VARIANTS}
    for repeat in range(args.repeats):
        for name, (workers, kind, tables) in VARIANTS.items():  # interleaved
            run = CACHE / f"throughput-{name}-{repeat}"
            shutil.rmtree(run, ignore_errors=True)
            tc = replace(base.train, num_workers=workers, neighborhoods=tables)
            cfg = replace(base, train=tc)
            results[name].append(train(cfg, graph, run, producer=kind))
            shutil.rmtree(run, ignore_errors=True)
    inline = statistics.median(r["pairs_per_s"] for r in results["inline"])
    for name, records in results.items():
        pairs = statistics.median(r["pairs_per_s"] for r in records)
        emit(
            {
                "bench": "train_throughput",
                "variant": name,
                "pairs_per_s": pairs,
                "producer_wait": statistics.median(r["producer_wait"] for r in records),
                "speedup_vs_inline": round(pairs / inline, 2),
            }
        )


if __name__ == "__main__":
    main()
