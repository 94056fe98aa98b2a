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

Then the same GET load twice per round, clean and under a bounded hostile mix sent
alongside it from a second client session (``--hostile`` requests of each kind a
round, paced over the clean run's duration): bodies over the 1 MiB cap (declared and
chunked), ids of 10,000 characters (GET and POST), batches over the items x k cap,
reloads without the admin token, outside the index root, and to broken index folders
(truncated vectors, ids of another length, a garbage FAISS file, a NaN vector).
Reports the good lookups' p50/p99 in both (medians of the rounds) and their ratio,
failed good lookups, the answers to each hostile kind and how many were not the
refusal expected, and which index serves at the end. Loopback only, bounded counts.

    python benchmarks/serve.py [--items 100000] [--requests 2000] [--concurrency 16]
                               [--hostile 20]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import httpx
import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import CACHE, emit, machine  # noqa: E402
from index import embeddings_folder, synthetic_vectors  # noqa: E402

from pinsage.index import Index, build_index  # noqa: E402

K = 10
TOKEN = "benchmark-admin-token"  # given to the server through PINSAGE_ADMIN_TOKEN
AUTH = {"Authorization": f"Bearer {TOKEN}"}
HOSTILE_WORKERS = 2


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
        env=os.environ | {"PINSAGE_ADMIN_TOKEN": TOKEN},
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
        "index": index.manifest.factory,
        "requests": count,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        **{k: round(v, 2) for k, v in median.items()},
        "errors": sum(r["errors"] for r in rounds),
        "in_process_items_per_s": round(in_process, 1),
        "http_over_in_process": round(median["items_per_s"] / in_process, 3),
    }


def _break(folder: Path, how: str) -> None:
    """Make the index copy ``folder`` inconsistent in one way (``how``)."""
    vectors = folder / "vectors.npy"
    if how == "truncated-vectors":
        os.truncate(vectors, vectors.stat().st_size // 2)
    elif how == "short-ids":
        ids = pq.read_table(folder / "ids.parquet")
        pq.write_table(ids.slice(0, ids.num_rows - 1), folder / "ids.parquet")
    elif how == "garbage-faiss":
        (folder / "index.faiss").write_bytes(os.urandom(4096))
    elif how == "nan-vector":
        matrix = np.load(vectors)
        matrix[len(matrix) // 2, 0] = np.nan
        np.save(vectors, matrix)


BROKEN = ("truncated-vectors", "short-ids", "garbage-faiss", "nan-vector")


def _index_root(items: int, vectors: np.ndarray) -> Path:
    """An index root: ``index`` (built once, cached) and broken copies of it."""
    root = CACHE / f"serve-root-{items}"
    build_index(embeddings_folder(items, vectors), root / "index")
    for how in BROKEN:
        shutil.rmtree(root / how, ignore_errors=True)
        shutil.copytree(root / "index", root / how)
        _break(root / how, how)
    return root


def _hostile_kinds() -> dict:
    """Hostile kind -> (method, path, request kwargs factory, statuses expected).

    "reset" stands for a connection the server closed while the client was still
    sending: a refusal too (a body over the cap is never read).
    """
    big = b'{"items": [1], "k": 10, "pad": "' + b"x" * (2 << 20) + b'"}'
    long_id = "x" * 10_000
    bad = itertools.cycle(BROKEN)

    async def chunks():  # no Content-Length: the server counts what streams in
        for _ in range(40):
            yield b"x" * 65536

    return {
        "oversized body": ("POST", "/similar", lambda: {"data": big}, {413, "reset"}),
        "oversized chunked": (
            "POST",
            "/similar",
            lambda: {"data": chunks()},
            {413, "reset"},
        ),
        "long id GET": ("GET", f"/similar/{long_id}", dict, {422}),
        "long id POST": (
            "POST",
            "/similar",
            lambda: {"json": {"items": [long_id], "k": K}},
            {422},
        ),
        "items x k over cap": (
            "POST",
            "/similar",
            lambda: {"json": {"items": list(range(1000)), "k": 101}},
            {422},
        ),
        "reload no token": ("POST", "/reload", lambda: {"json": {}}, {401}),
        "reload outside root": (
            "POST",
            "/reload",
            lambda: {"json": {"path": "/"}, "headers": AUTH},
            {403},
        ),
        "reload broken folder": (
            "POST",
            "/reload",
            lambda: {"json": {"path": next(bad)}, "headers": AUTH},
            {400},
        ),
    }


async def _send_hostile(url: str, count: int, pause: float) -> dict:
    """``count`` requests of each hostile kind, interleaved and paced by ``pause``.

    Returns kind -> Counter of the answers (status, or "reset"), plus the count of
    answers that were not the refusal expected under "unexpected".
    """
    kinds = _hostile_kinds()
    plan = iter([kind for _ in range(count) for kind in kinds])
    answers = {kind: collections.Counter() for kind in kinds}
    async with aiohttp.ClientSession(url) as session:

        async def worker() -> None:
            for kind in plan:
                method, path, kwargs, _ = kinds[kind]
                try:
                    async with session.request(method, path, **kwargs()) as r:
                        await r.read()
                        answers[kind][r.status] += 1
                except aiohttp.ClientError:
                    answers[kind]["reset"] += 1
                await asyncio.sleep(pause)

        await asyncio.gather(*(worker() for _ in range(HOSTILE_WORKERS)))
    unexpected = sum(
        n
        for kind, got in answers.items()
        for key, n in got.items()
        if key not in kinds[kind][3]
    )
    return {"answers": answers, "unexpected": unexpected}


async def _good_and_hostile(url: str, good: list, args, pause: float | None):
    """The good GET load alone (``pause`` None) or with the hostile mix alongside."""
    if pause is None:
        return await _load(url, good, args.concurrency), None
    return await asyncio.gather(
        _load(url, good, args.concurrency), _send_hostile(url, args.hostile, pause)
    )


def _hostile(url: str, index: Index, args, rng) -> dict:
    """Rounds of the clean GET load, then the same under the hostile mix."""
    rounds = []
    for _ in range(args.repeats):
        rows = rng.integers(0, len(index), (args.requests, 1)).tolist()
        good = _requests("get", rows)
        clean, _ = asyncio.run(_good_and_hostile(url, good, args, None))
        total = args.hostile * len(_hostile_kinds())
        pause = clean[2] * HOSTILE_WORKERS / total  # spread over a clean run's time
        hostile, sent = asyncio.run(_good_and_hostile(url, good, args, pause))
        rounds.append((clean, hostile, sent))
    with httpx.Client(base_url=url) as client:
        serving = client.get("/healthz").json()["index"]
    return _hostile_record(args, rounds, serving)


def _ms(runs: list, q: int) -> float:
    """Median over rounds of the q-th percentile latency of the 200s, in ms."""
    ms = statistics.median(float(np.percentile(r[0], q)) * 1e3 for r in runs)
    return round(ms, 2)


def _hostile_record(args, rounds: list, serving: str) -> dict:
    """The JSON line of `_hostile`: clean vs hostile latency, failures, answers."""
    clean = [r[0] for r in rounds]
    hostile = [r[1] for r in rounds]
    answers = collections.defaultdict(collections.Counter)
    for _, _, sent in rounds:
        for kind, got in sent["answers"].items():
            answers[kind].update(got)
    ratio = _ms(hostile, 99) / _ms(clean, 99)
    return {
        "bench": "serve",
        "mode": "get /similar, clean vs hostile mix",
        "requests": args.requests,
        "concurrency": args.concurrency,
        "repeats": args.repeats,
        "clean_p50_ms": _ms(clean, 50),
        "clean_p99_ms": _ms(clean, 99),
        "hostile_p50_ms": _ms(hostile, 50),
        "hostile_p99_ms": _ms(hostile, 99),
        "p99_ratio": round(ratio, 3),
        "p99_within_2x": ratio <= 2.0,
        "good_failed_clean": sum(r[1] for r in clean),
        "good_failed_hostile": sum(r[1] for r in hostile),
        "hostile_sent": sum(sum(c.values()) for c in answers.values()),
        "hostile_unexpected": sum(sent["unexpected"] for _, _, sent in rounds),
        "hostile_answers": {
            kind: {str(key): n for key, n in got.items()}
            for kind, got in answers.items()
        },
        "serving_at_end": serving,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hostile", type=int, default=20, help="each kind, a round")
    args = parser.parse_args()
    emit({"bench": "serve", "machine": machine(), "items": args.items, "k": K})
    vectors, _ = synthetic_vectors(args.items, seed=args.items)
    root = _index_root(args.items, vectors)
    index = Index.load(root / "index")
    rng = np.random.default_rng(0)
    port = _free_port()
    server = _start_server(root / "index", port)
    url = f"http://127.0.0.1:{port}"
    try:
        for mode in ("get", "post"):
            emit(_measure(url, index, mode, args, rng))
        emit(_hostile(url, index, args, rng))
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
