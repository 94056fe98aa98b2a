r"""Peer benchmark: DGL's C++/OpenMP ``PinSAGESampler`` on a pinsage graph directory.

Run with the peer venv's python (``bash benchmarks/peer/setup.sh`` creates it),
never the project's::

    benchmarks/peer/.venv/bin/python benchmarks/peer/dgl_sampler.py \
        --graph DIR --walks 200 --length 3 --restart 0.5 --top 50

``DIR`` holds ``item_indptr.npy``/``item_indices.npy`` (item -> context CSR),
``context_indptr.npy``/``context_indices.npy`` (context -> item CSR) and
``manifest.json``. Contexts become DGL's ``user`` node type. The edge weights
files are not read: ``PinSAGESampler`` has no transition-probability argument,
so DGL's walks are always uniform.

Timed, after warm-up batches and excluding graph construction:

* ``seconds_per_batch_median``: one ``sampler(seeds)`` call (walks plus
  top-``T`` selection plus building the neighbour graph);
* ``blocks2_seconds_per_batch_median``: two layers of blocks built the way
  DGL's PinSAGE example does (frontier for the seeds, ``dgl.to_block``, visit
  counts copied onto the block, then the same for the block's source nodes);
* ``walk_only_seconds_per_batch_median``: the random walk alone, the very
  ``dgl.sampling.random_walk`` call the sampler makes internally. Its traces
  give ``traversals_per_s``: a traversal (item -> user -> item) is counted
  for every non ``-1`` item slot of a trace. The count comes from this
  separate call, so it is the same random process as in the timed sampler
  calls but not the same draws.

DGL's semantics (DGL 2.1): the sampler's per-hop ``restart_prob`` is ``R``
before every traversal but the first and 0 elsewhere, and a walk stops with
that probability before the hop (the C++ loop draws the successor, then
overwrites it with ``-1``). So every walk makes its first traversal and then
stops after each traversal with probability ``R``: the expected traversals
per walk are ``(1 - (1 - R) ** L) / R`` (``traversals_per_walk_mean``
measures it). Visits are the items reached after each traversal, the seed
included when a walk comes back to it; the top ``T`` are sorted by visit
count, ties going to the larger item id.

Prints one JSON line on stdout.
"""

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import dgl
import numpy as np
import torch

ITEM = "item"
USER = "user"


def parse_args() -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--graph", type=Path, required=True, help="graph dir")
    parser.add_argument("--walks", type=int, required=True, help="walks per seed")
    parser.add_argument("--length", type=int, required=True, help="max traversals")
    parser.add_argument("--restart", type=float, required=True, help="stop prob")
    parser.add_argument("--top", type=int, required=True, help="neighbours kept")
    parser.add_argument("--batch", type=int, default=1024, help="seeds per batch")
    parser.add_argument("--batches", type=int, default=20, help="timed batches")
    parser.add_argument("--warmup", type=int, default=2, help="untimed batches")
    parser.add_argument("--seed", type=int, default=0, help="seed for seeds/walks")
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads")
    return parser.parse_args()


def load_graph(graph_dir: Path) -> tuple[dgl.DGLGraph, np.ndarray, dict[str, int]]:
    """Build the bidirectional item/user heterograph from a graph directory.

    Returns the graph, the item CSR ``indptr`` (for item degrees) and the
    manifest's counts.
    """
    manifest = json.loads((graph_dir / "manifest.json").read_text())
    counts = {k: int(manifest[k]) for k in ("num_items", "num_contexts", "num_edges")}
    item_indptr = np.load(graph_dir / "item_indptr.npy")
    item_indices = np.load(graph_dir / "item_indices.npy")
    user_indptr = np.load(graph_dir / "context_indptr.npy")
    user_indices = np.load(graph_dir / "context_indices.npy")
    if (
        item_indptr.shape != (counts["num_items"] + 1,)
        or user_indptr.shape != (counts["num_contexts"] + 1,)
        or item_indices.shape != (counts["num_edges"],)
        or user_indices.shape != (counts["num_edges"],)
    ):
        raise ValueError(f"{graph_dir}: array shapes disagree with manifest.json")

    def csr(indptr: np.ndarray, indices: np.ndarray) -> tuple[str, tuple]:
        empty_eids = torch.empty(0, dtype=torch.int64)
        return (
            "csr",
            (
                torch.from_numpy(indptr.astype(np.int64)),
                torch.from_numpy(indices.astype(np.int64)),
                empty_eids,
            ),
        )

    graph = dgl.heterograph(
        {
            (ITEM, "to_user", USER): csr(item_indptr, item_indices),
            (USER, "to_item", ITEM): csr(user_indptr, user_indices),
        },
        num_nodes_dict={ITEM: counts["num_items"], USER: counts["num_contexts"]},
    )
    return graph, item_indptr, counts


def draw_seed_batches(
    item_indptr: np.ndarray, batch: int, count: int, seed: int
) -> list[torch.Tensor]:
    """Draw ``count`` batches of distinct items with at least one edge."""
    candidates = np.flatnonzero(np.diff(item_indptr) > 0)
    if batch > candidates.size:
        raise ValueError(f"batch {batch} > {candidates.size} items with edges")
    rng = np.random.default_rng(seed)
    return [
        torch.from_numpy(rng.choice(candidates, size=batch, replace=False))
        for _ in range(count)
    ]


def time_per_batch(
    fn: Callable[[torch.Tensor], object], batches: list[torch.Tensor], warmup: int
) -> list[float]:
    """Call ``fn`` on every batch; return the seconds of the non-warm-up calls."""
    seconds = []
    for i, seeds in enumerate(batches):
        start = time.perf_counter()
        fn(seeds)
        if i >= warmup:
            seconds.append(time.perf_counter() - start)
    return seconds


def sample_blocks(
    sampler: dgl.sampling.PinSAGESampler, seeds: torch.Tensor, num_layers: int
) -> list[dgl.DGLGraph]:
    """Build message-flow blocks as DGL's PinSAGE example does, input layer first."""
    blocks: list[dgl.DGLGraph] = []
    for _ in range(num_layers):
        frontier = sampler(seeds)
        block = dgl.to_block(frontier, seeds)
        block.edata["weights"] = frontier.edata["weights"][block.edata[dgl.EID]]
        seeds = block.srcdata[dgl.NID]
        blocks.insert(0, block)
    return blocks


def main() -> None:
    """Run the benchmark and print one JSON line."""
    args = parse_args()
    torch.set_num_threads(args.threads)
    dgl.utils.set_num_threads(args.threads)
    dgl.seed(args.seed)

    graph, item_indptr, counts = load_graph(args.graph)
    sampler = dgl.sampling.PinSAGESampler(
        graph,
        ITEM,
        USER,
        num_traversals=args.length,
        termination_prob=args.restart,
        num_random_walks=args.walks,
        num_neighbors=args.top,
    )
    batches = draw_seed_batches(
        item_indptr, args.batch, args.warmup + args.batches, args.seed
    )

    sample_seconds = time_per_batch(sampler, batches, args.warmup)
    blocks_seconds = time_per_batch(
        lambda seeds: sample_blocks(sampler, seeds, num_layers=2),
        batches,
        args.warmup,
    )

    traversals: list[int] = []

    def walk(seeds: torch.Tensor) -> None:
        traces, _ = dgl.sampling.random_walk(
            graph,
            seeds.repeat_interleave(args.walks),
            metapath=sampler.full_metapath,
            restart_prob=sampler.restart_prob,
        )
        traversals.append(int((traces[:, 2::2] != -1).sum()))

    walk_seconds = time_per_batch(walk, batches, args.warmup)
    del traversals[: args.warmup]
    walks_counted = len(traversals) * args.batch * args.walks
    sample_median = statistics.median(sample_seconds)
    print(
        json.dumps(
            {
                "impl": "dgl",
                "dgl_version": dgl.__version__,
                "torch_version": torch.__version__,
                "threads": dgl.utils.get_num_threads(),
                "walks": args.walks,
                "length": args.length,
                "restart": args.restart,
                "top": args.top,
                "batch": args.batch,
                "batches": args.batches,
                "seconds_per_batch_median": sample_median,
                "seeds_per_s": args.batch / sample_median,
                "blocks2_seconds_per_batch_median": statistics.median(blocks_seconds),
                "traversals_per_s": statistics.mean(traversals) / sample_median,
                "traversals_per_walk_mean": sum(traversals) / walks_counted,
                "walk_only_seconds_per_batch_median": statistics.median(walk_seconds),
                **counts,
            }
        )
    )


if __name__ == "__main__":
    main()
