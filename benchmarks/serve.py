"""Lookup service under a bounded load on loopback: throughput, latency, errors.

Serves an index of ``--items`` synthetic vectors (dim 128, the index benchmark's
data; auto kind: HNSW above 50k) with `pinsage serve --no-access-log` in its own
process, then sends a fixed number of requests (``--requests``) at a fixed
concurrency (``--concurrency``) from an asyncio aiohttp client (installed with
ray[default]; several times lighter per request than httpx's, which capped this
benchmark at ~300 requests/s): GET /similar/{item}?k=10 for random items, and POST
/similar batches of ``--batch`` items. Reports requests/s, items/s, p50/p99 latency
and the count of non-200 answers, the median of ``--repeats`` rounds, and the same
lookups made in-process through `Index.similar` as the baseline the HTTP figure is a
ratio of. Client and server share this machine's 2 cores. Prints JSON lines, the
machine first.

    python benchmarks/serve.py [--items 100000] [--requests 2000] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine  # noqa: E402
from index import embeddings_folder, synthetic_vectors  # noqa: E402

from pinsage.index import Index, build_index  # noqa: E402

K = 10


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_server(index: Path, port: int) -> subprocess.Popen:
    """`pinsage serve` in a child process; returns once /healthz answers."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from pinsage.cli import main; main()",
            "-q",
            "serve",
            "--index",
            str(index),
            "--port",
            str(port),
            "--no-access-log",
        ],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not start within 120 s")


async def _load(url: str, requests: list, concurrency: int) -> tuple[list, int, float]:
    """Send ``requests`` (method, path, json) with at most ``concurrency`` in flight.

    Returns (latencies in s of the 200 answers, non-200 count, wall seconds).
    """
    latencies, errors = [], 0
    pending = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, connector=connector) as session:

        async def worker() -> None:
            nonlocal errors
            for method, path, body in pending:  # a shared iterator: no request twice
                t0 = time.perf_counter()
                try:
                    async with session.request(method, path, json=body) as r:
                        await r.read()
                        ok = r.status == 200
                except aiohttp.ClientError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return latencies, errors, time.perf_counter() - t0


def _round(url: str, requests: list, concurrency: int, items_per: int) -> dict:
    latencies, errors, seconds = asyncio.run(_load(url, requests, concurrency))
    ms = np.array(latencies) * 1e3
    return {
        "requests_per_s": len(requests) / seconds,
        "items_per_s": len(requests) * items_per / seconds,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "errors": errors,
    }


def _requests(mode: str, items: list[list[int]]) -> list:
    if mode == "get":
        return [("GET", f"/similar/{row[0]}?k={K}", None) for row in items]
    return [("POST", "/similar", {"items": row, "k": K}) for row in items]


def _measure(url: str, index: Index, mode: str, args, rng) -> dict:
    """Median of ``args.repeats`` rounds of one request mode, and its baseline."""
    per = 1 if mode == "get" else args.batch
    count = args.requests if mode == "get" else max(1, args.requests // 10)
    rounds, baseline = [], []
    for _ in range(args.repeats):
        items = rng.integers(0, len(index), (count, per)).tolist()
        rounds.append(_round(url, _requests(mode, items), args.concurrency, per))
        t0 = time.perf_counter()
        for row in items:
            index.similar(row, K)
        baseline.append(count * per / (time.perf_counter() - t0))
    median = {
        key: statistics.median(r[key] for r in rounds)
        for key in ("requests_per_s", "items_per_s", "p50_ms", "p99_ms")
    }
    in_process = statistics.median(baseline)
    return {
        "bench": "serve",
        "mode": f"{mode} /similar" + (f" x{per}" if per > 1 else ""),
        "index": index.manifest["factory"],
        "requests": count,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        **{k: round(v, 2) for k, v in median.items()},
        "errors": sum(r["errors"] for r in rounds),
        "in_process_items_per_s": round(in_process, 1),
        "http_over_in_process": round(median["items_per_s"] / in_process, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    emit({"bench": "serve", "machine": machine(), "items": args.items, "k": K})
    vectors, _ = synthetic_vectors(args.items, seed=args.items)
    out = CACHE / f"serve-index-{args.items}"
    build_index(embeddings_folder(args.items, vectors), out)
    index = Index.load(out)
    rng = np.random.default_rng(0)
    port = _free_port()
    server = _start_server(out, port)
    try:
        for mode in ("get", "post"):
            emit(_measure(f"http://127.0.0.1:{port}", index, mode, args, rng))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
