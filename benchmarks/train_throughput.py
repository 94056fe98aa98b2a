"""Training throughput: pairs/s and the consumer's wait fraction with the
producer-consumer loader (thread or process producers) against the same loop with
sampling inline (0 workers), and with per-epoch neighbourhood tables instead of walks
per batch, on one synthetic graph and config, in one run. Prints JSON lines; the
figures are medians of interleaved repeats.

``--threads`` instead compares torch's own thread count (one per core) with the
fitted one (`pinsage.threads`: the usable CPUs less the producer threads) on the demo
config (`configs/demo.yaml`, its generated graph), idle and beside one competing
CPU-bound process, in one run.

    python benchmarks/train_throughput.py [--steps 60] [--repeats 3] [--threads]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, LOADER_BATCH, emit, loader_workload, machine  # noqa: E402

from pinsage.config import PipelineConfig  # noqa: E402
from pinsage.data.synth import synthesize  # noqa: E402
from pinsage.graph import build_graph  # noqa: E402
from pinsage.train import train  # noqa: E402

# name: (producers, producer kind, where neighbourhoods come from)
VARIANTS = {
    "inline": (0, "thread", "batch"),
    "thread": (1, "thread", "batch"),
    "process": (1, "process", "batch"),
    "thread-epoch-tables": (1, "thread", "epoch"),
}


def _spin() -> None:
    """A competing CPU-bound process (another job on the same machine)."""
    while True:
        pass


def thread_counts(steps: int, repeats: int) -> None:
    """pairs/s of the demo config: torch's thread count against the fitted one."""
    base = PipelineConfig()
    data = synthesize(base.synth, CACHE / "threads-data")
    graph = CACHE / "threads-graph"
    build_graph(data / "interactions.parquet", graph, items=data / "items.parquet")
    base = replace(base, train=replace(base.train, epochs=1, steps_per_epoch=steps))
    variants = {"torch default": os.cpu_count(), "fitted": None}
    for load in ("idle", "busy"):
        spinner = multiprocessing.Process(target=_spin, daemon=True)
        if load == "busy":
            spinner.start()
        results: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(repeats):
            for name, threads in variants.items():  # interleaved
                run = CACHE / f"threads-{repeat}"
                shutil.rmtree(run, ignore_errors=True)
                cfg = base.executed(torch_threads=threads)
                results[name].append(train(cfg, graph, run)["pairs_per_s"])
                shutil.rmtree(run, ignore_errors=True)
        if spinner.is_alive():
            spinner.terminate()
        default = statistics.median(results["torch default"])
        for name, rates in results.items():
            emit(
                {
                    "bench": "train_threads",
                    "load": load,
                    "variant": name,
                    "pairs_per_s": statistics.median(rates),
                    "vs_torch_default": round(statistics.median(rates) / default, 2),
                    "machine": machine(),
                }
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", action="store_true")
    args = parser.parse_args()
    if args.threads:
        thread_counts(args.steps, args.repeats)
        return
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
            cfg = base.executed(producers=workers, producer=kind)
            cfg = replace(cfg, train=replace(cfg.train, neighborhoods=tables))
            results[name].append(train(cfg, graph, run))
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
