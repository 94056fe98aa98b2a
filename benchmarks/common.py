"""Shared benchmark helpers: machine facts, JSON lines, cached synthetic graphs."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

CACHE = Path(__file__).resolve().parents[1] / ".bench"


def machine() -> dict:
    """What the figures were measured on."""
    import torch

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gib": round(mem, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
    }


def emit(record: dict) -> None:
    """Print one JSON line (flushed, so a long benchmark shows progress)."""
    print(json.dumps(record), flush=True)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def synthetic_graph(
    num_items: int, num_users: int, num_edges: int, seed: int = 1
) -> Path:
    """A cached synthetic graph (Zipf popularity, 50 clusters); built once per size."""
    from pinsage.data.synth import SynthConfig, synthesize
    from pinsage.graph import build_graph

    name = f"{num_items}x{num_users}x{num_edges}-s{seed}"
    cfg = SynthConfig(
        num_items=num_items,
        num_users=num_users,
        num_edges=num_edges,
        num_clusters=50,
        test_fraction=0.0,
        seed=seed,
    )
    data = synthesize(cfg, CACHE / f"data-{name}")
    graph = CACHE / f"graph-{name}"
    build_graph(data / "interactions.parquet", graph)
    return graph
