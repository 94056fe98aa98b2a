"""Graph build time and peak memory at 1M, 10M and 50M synthetic interactions.

Each build runs in a fresh subprocess so that its peak RSS is its own. Goals: time
linear in interactions, peak memory under 3x the final CSR size. Prints JSON lines.

    python benchmarks/graph_build.py [--sizes 1000000 10000000 50000000]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, ONE_CLUSTER_EACH, emit, machine  # noqa: E402

# Edges per item and per user, as in the sampler benchmark's graphs.
EDGES_PER_ITEM, EDGES_PER_USER = 25, 50

_CHILD = """
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from common import peak_rss_kib, reset_peak_rss
from pinsage.graph import build_graph

base = reset_peak_rss()
t0 = time.perf_counter()
m = build_graph(Path(sys.argv[1]), Path(sys.argv[2]))
seconds = time.perf_counter() - t0
print(json.dumps({"seconds": seconds, "peak_kib": peak_rss_kib(),
                  "baseline_kib": base, "sort_seconds": m.sort_seconds,
                  "num_edges": m.num_edges}))
"""


def _data(num_edges: int) -> Path:
    from pinsage.data.synth import SynthConfig, synthesize

    cfg = SynthConfig(
        num_items=num_edges // EDGES_PER_ITEM,
        num_users=num_edges // EDGES_PER_USER,
        num_edges=num_edges,
        num_clusters=50,
        test_fraction=0.0,
        seed=1,
        **ONE_CLUSTER_EACH,
    )
    t0 = time.perf_counter()
    out = synthesize(cfg, CACHE / f"build-data-{num_edges}")
    emit(
        {
            "bench": "synth",
            "interactions": num_edges,
            "seconds": round(time.perf_counter() - t0, 2),
        }
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000, 50_000_000]
    )
    args = parser.parse_args()
    emit({"bench": "graph_build", "machine": machine()})
    for size in args.sizes:
        data = _data(size)
        out = CACHE / f"build-graph-{size}"
        shutil.rmtree(out, ignore_errors=True)
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _CHILD,
                str(data / "interactions.parquet"),
                str(out),
                str(Path(__file__).resolve().parent),  # for `common`
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        csr_bytes = sum(p.stat().st_size for p in out.glob("*.npy"))
        peak = r["peak_kib"] * 1024
        emit(
            {
                "bench": "graph_build",
                "interactions": size,
                "edges": r["num_edges"],
                "seconds": round(r["seconds"], 2),
                "sort_seconds": round(r["sort_seconds"], 2),
                "seconds_per_million": round(r["seconds"] / size * 1e6, 3),
                # High-water mark since the imports.
                "peak_rss_mib": round(peak / 2**20),
                "baseline_rss_mib": round(r["baseline_kib"] / 1024),
                "csr_mib": round(csr_bytes / 2**20),
                "peak_over_csr": round(peak / csr_bytes, 2),
                "peak_above_baseline_over_csr": round(
                    (peak - r["baseline_kib"] * 1024) / csr_bytes, 2
                ),
            }
        )
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
