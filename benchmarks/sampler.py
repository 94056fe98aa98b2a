"""Importance sampler throughput, ours vs. DGL's C++ PinSAGESampler, in one run.

Graphs: (a) 20k items, 10k users, 500k edges and (b) 200k items, 100k users, 5M edges
(synthetic, Zipf popularity; cached under .bench/). Settings: walks=10, top=3 and
walks=200, top=50, both with restart=0.5 and --length traversals at most, 1024 seeds a
batch. For each: seeds/s and walk traversals/s (medians over batches), 2-layer blocks,
and the same through DGL in its benchmark-only venv (benchmarks/peer/setup.sh) on the
same graph files, with the ratio. The traversal rate is also stated against memory
latency, measured here by a pointer-chasing loop. Prints JSON lines.

    python benchmarks/sampler.py [--threads 2] [--batches 20] [--length 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, median_seconds, synthetic_graph  # noqa: E402
from memlat import pointer_chase_ns  # noqa: E402

from pinsage.config import SamplerConfig  # noqa: E402
from pinsage.graph import load_graph  # noqa: E402
from pinsage.sampler import item_blocks, item_neighbors, walk_visits  # noqa: E402

PEER = Path(__file__).resolve().parent / "peer"
GRAPHS = {"a": (20_000, 10_000, 500_000), "b": (200_000, 100_000, 5_000_000)}
SETTINGS = [(10, 3), (200, 50)]  # (walks, top)
BATCH = 1024


def _ours(graph_dir: Path, cfg: SamplerConfig, batches: int) -> dict:
    g = load_graph(graph_dir)
    gen = torch.Generator().manual_seed(cfg.seed)
    candidates = torch.nonzero(g.csr.item_degrees() > 0).squeeze(1)
    seed_batches = [
        candidates[torch.randperm(candidates.numel(), generator=gen)[:BATCH]]
        for _ in range(batches)
    ]
    for seeds in seed_batches[:2]:  # warm-up
        item_neighbors(g.csr, seeds, cfg, generator=gen)
    it = iter(seed_batches * 2)
    per_batch = median_seconds(
        lambda: item_neighbors(g.csr, next(it), cfg, generator=gen), batches
    )
    # Every traversal stands on one item: the visit count is the traversal count.
    traversals = sum(
        walk_visits(g.csr, s, cfg, generator=gen)[0].numel() for s in seed_batches
    )
    it = iter(seed_batches * 2)
    blocks = median_seconds(
        lambda: item_blocks(g.csr, next(it), cfg, generator=gen), max(3, batches // 4)
    )
    return {
        "seconds_per_batch_median": per_batch,
        "seeds_per_s": BATCH / per_batch,
        "traversals_per_walk_mean": traversals / (batches * BATCH * cfg.num_walks),
        "traversals_per_s": traversals / batches / per_batch,
        "blocks2_seconds_per_batch_median": blocks,
    }


def _peer(
    graph_dir: Path, cfg: SamplerConfig, batches: int, threads: int
) -> dict | None:
    python = PEER / ".venv/bin/python"
    if not python.exists():
        return None
    cmd = [
        str(python),
        str(PEER / "dgl_sampler.py"),
        "--graph",
        str(graph_dir),
        "--walks",
        str(cfg.num_walks),
        "--length",
        str(cfg.walk_length),
        "--restart",
        str(cfg.restart),
        "--top",
        str(cfg.top_k),
        "--batch",
        str(BATCH),
        "--batches",
        str(batches),
        "--threads",
        str(threads),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


PEER_KEYS = ("seeds_per_s", "traversals_per_s", "blocks2_seconds_per_batch_median")


def _versus_peer(ours: dict[str, float], peer: dict[str, float]) -> dict:
    """DGL's figures and our speed-ups over them."""
    return {
        "dgl_seeds_per_s": round(peer["seeds_per_s"], 1),
        "dgl_traversals_per_s": round(peer["traversals_per_s"]),
        "dgl_blocks2_seconds_per_batch_median": round(
            peer["blocks2_seconds_per_batch_median"], 6
        ),
        "speedup_seeds_per_s": round(ours["seeds_per_s"] / peer["seeds_per_s"], 2),
        "speedup_blocks2": round(
            peer["blocks2_seconds_per_batch_median"]
            / ours["blocks2_seconds_per_batch_median"],
            2,
        ),
    }


def _setting_record(
    name: str,
    graph_dir: Path,
    cfg: SamplerConfig,
    args: argparse.Namespace,
    latency_ns: float | None,
) -> dict:
    """Ours and DGL (medians of alternating repeats) on one graph and setting."""
    # Alternate ours and DGL so that machine noise hits both alike.
    runs = [
        (
            _ours(graph_dir, cfg, args.batches),
            _peer(graph_dir, cfg, args.batches, args.threads),
        )
        for _ in range(args.repeats)
    ]
    ours = {k: statistics.median(r[0][k] for r in runs) for k in runs[0][0]}
    record = {
        "bench": "sampler",
        "graph": name,
        "items": GRAPHS[name][0],
        "users": GRAPHS[name][1],
        "edges": GRAPHS[name][2],
        "walks": cfg.num_walks,
        "top": cfg.top_k,
        "restart": cfg.restart,
        "length": cfg.walk_length,
        "batch": BATCH,
        "threads": args.threads,
        "repeats": args.repeats,
        **{f"ours_{k}": round(v, 6) for k, v in ours.items()},
    }
    if latency_ns:
        # One dependent random read per hop, two hops per traversal, one chain
        # per thread: what a latency-bound walker could do.
        bound = args.threads / (2 * latency_ns * 1e-9)
        record["latency_bound_traversals_per_s"] = round(bound)
        record["ours_fraction_of_latency_bound"] = round(
            ours["traversals_per_s"] / bound, 3
        )
    if runs[0][1] is not None:
        peer = {k: statistics.median(r[1][k] for r in runs) for k in PEER_KEYS}
        record |= _versus_peer(ours, peer)
    return record


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--length", type=int, default=3)
    parser.add_argument(
        "--graphs", nargs="+", default=list(GRAPHS), choices=list(GRAPHS)
    )
    parser.add_argument("--repeats", type=int, default=5, help="ours/DGL alternations")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    latency_ns = pointer_chase_ns()
    emit({"bench": "sampler", "machine": machine(), "pointer_chase_ns": latency_ns})
    if not (PEER / ".venv/bin/python").exists():
        emit(
            {
                "bench": "sampler",
                "note": "no peer venv: run `bash benchmarks/peer/setup.sh` for DGL",
            }
        )
    for name in args.graphs:
        graph_dir = synthetic_graph(*GRAPHS[name])
        for walks, top in SETTINGS:
            cfg = SamplerConfig(
                num_walks=walks, walk_length=args.length, restart=0.5, top_k=top
            )
            emit(_setting_record(name, graph_dir, cfg, args, latency_ns))


if __name__ == "__main__":
    main()
