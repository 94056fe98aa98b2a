"""Nearest-neighbour index: build time, size, recall@10 and queries/s per kind, one run.

Flat (exact), HNSW and IVF-PQ built by `pinsage.index.build_index` (which tunes
efSearch / nprobe for recall@10 >= 0.95 against exact search) over synthetic
embeddings: N vectors of dim 128 around N / 200 random centres (unit-normalised, so
neighbourhoods have structure as trained embeddings do). Queries: 1,000 held-out
vectors from the same centres, searched in batches of ``--batch`` through
`Index.search(vectors=...)`; recall@10 against the flat index's answers; queries/s as
the median of ``--repeats`` timed passes, and each kind's ratio over flat. Index size
is the FAISS file's bytes (the vectors file for lookups by item comes on top, the same
for every kind). Prints JSON lines, the machine first.

    python benchmarks/index.py [--sizes 100000,1000000] [--kinds flat,hnsw,ivfpq]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine, median_seconds  # noqa: E402

from pinsage.atomic import publish
from pinsage.index import Index, build_index  # noqa: E402
from pinsage.index.build import INDEX_FILE, recall_at  # noqa: E402
from pinsage.infer.output import matrix_batches, write_parts  # noqa: E402

DIM = 128
QUERIES = 1000
K = 10


def synthetic_vectors(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(n catalogue vectors, QUERIES held-out queries) around shared centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 200), DIM)).astype(np.float32)

    def draw(count: int) -> np.ndarray:
        x = centres[rng.integers(0, len(centres), count)]
        return x + 0.7 * rng.standard_normal((count, DIM)).astype(np.float32)

    return draw(n), draw(QUERIES)


def embeddings_folder(n: int, vectors: np.ndarray) -> Path:
    """An embeddings folder of ``vectors`` (cached by size)."""
    folder = CACHE / f"index-embeddings-{n}-d{DIM}"
    if not (folder / "_SUCCESS").exists():
        ids = pa.array(np.arange(n, dtype=np.int64))
        write_parts(folder, "item", ids, matrix_batches(vectors))
        publish(folder, {"count": n, "dim": DIM, "checkpoint_sha256": f"synthetic-{n}"})
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--kinds", default="flat,hnsw,ivfpq")
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    emit({"bench": "index", "machine": machine(), "dim": DIM, "queries": QUERIES})
    kinds = args.kinds.split(",")
    for n in (int(s) for s in args.sizes.split(",")):
        vectors, queries = synthetic_vectors(n, seed=n)
        emb = embeddings_folder(n, vectors)
        exact, qps = None, {}
        for kind in ["flat", *(k for k in kinds if k != "flat")]:
            out = CACHE / f"index-{n}-{kind}"
            t0 = time.perf_counter()
            manifest = build_index(emb, out, kind=kind, overwrite=True)
            seconds = time.perf_counter() - t0
            index = Index.load(out)

            def run(index: Index = index, queries: np.ndarray = queries) -> np.ndarray:
                rows = []
                for lo in range(0, QUERIES, args.batch):
                    ids, _ = index.search(vectors=queries[lo : lo + args.batch], k=K)
                    rows.append(ids)
                return np.concatenate(rows).astype(np.int64)

            found = run()
            exact = found if kind == "flat" else exact
            qps[kind] = QUERIES / median_seconds(run, args.repeats)
            if kind not in kinds:
                continue
            emit(
                {
                    "bench": "index",
                    "items": n,
                    "kind": kind,
                    "factory": manifest.factory,
                    "search_params": manifest.search_params,
                    "build_and_tune_seconds": round(seconds, 2),
                    "index_mib": round((out / INDEX_FILE).stat().st_size / 2**20, 1),
                    "recall@10_held_out": round(recall_at(found, exact), 4),
                    "recall@10_manifest": manifest.recall_at_10,
                    "queries_per_s": round(qps[kind], 1),
                    "qps_over_flat": round(qps[kind] / qps["flat"], 2),
                    "batch": args.batch,
                }
            )


if __name__ == "__main__":
    main()
