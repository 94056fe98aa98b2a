"""Shared benchmark helpers: machine facts, JSON lines, cached synthetic graphs."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Resolved, so that a tree whose .bench is a link names cached files as every other does
# (a graph's manifest records its inputs' paths).
CACHE = (Path(__file__).resolve().parents[1] / ".bench").resolve()
# The generator's structure before overlapping interests and sub-clusters: every
# synthetic benchmark keeps it, so that its published figures stay comparable.
ONE_CLUSTER_EACH = {"interests": 1, "subclusters": 1, "in_subcluster": 0.0}


def reset_peak_rss() -> int:
    """Reset this process's RSS high-water mark (Linux); return its RSS now, KiB.

    Called after the imports: torch alone outweighs a small stage's own memory.
    """
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS:")


def peak_rss_kib() -> int:
    """This process's RSS high-water mark since `reset_peak_rss`, KiB."""
    return _status_kib("VmHWM:")


def _status_kib(key: str) -> int:
    lines = Path("/proc/self/status").read_text().splitlines()
    return next(int(line.split()[1]) for line in lines if line.startswith(key))


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
    num_items: int,
    num_users: int,
    num_edges: int,
    seed: int = 1,
    *,
    features: bool = False,
) -> Path:
    """A cached synthetic graph (Zipf popularity, 50 clusters); built once per size.

    ``features``: build with the synthetic item catalogue (a dense vector, a category,
    a short title and a price per item), so a model needs no per-item ID embedding.
    """
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
        **ONE_CLUSTER_EACH,
    )
    data = synthesize(cfg, CACHE / f"data-{name}")
    graph = CACHE / (f"graph-{name}-features" if features else f"graph-{name}")
    items = data / "items.parquet" if features else None
    build_graph(data / "interactions.parquet", graph, items=items)
    return graph


def _proc_table() -> tuple[dict[int, list[int]], dict[int, int]]:
    """(parent pid -> child pids, pid -> start time in clock ticks), from /proc."""
    children: dict[int, list[int]] = {}
    started: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        rest = stat.rsplit(")", 1)[1].split()
        pid = int(entry.name)
        children.setdefault(int(rest[1]), []).append(pid)
        started[pid] = int(rest[19])
    return children, started


def process_tree(pid: int) -> dict[int, int]:
    """``pid`` and all its living descendants: pid -> start time (clock ticks)."""
    children, started = _proc_table()
    tree, todo = {}, [pid]
    while todo:
        p = todo.pop()
        if p in started:
            tree[p] = started[p]
        todo.extend(children.get(p, ()))
    return tree


def alive(pid: int, start_time: int) -> bool:
    """Whether process ``pid`` still runs and is the one that started at start_time."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return int(stat.rsplit(")", 1)[1].split()[19]) == start_time


def pss_kib(pid: int) -> int:
    """Proportional set size of one process (KiB; 0 if it is gone or unreadable).

    PSS splits every shared page among the processes that map it, so a sum over
    processes counts shared memory (Ray's object store in /dev/shm) once.
    """
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def run_peak_pss(
    cmd: list[str], interval: float = 0.5
) -> tuple[str, int, dict[int, int]]:
    """Run ``cmd``; sample the summed PSS of it and its descendants every ``interval``.

    Returns (stdout, peak KiB, every descendant seen: pid -> start time). Raises
    `subprocess.CalledProcessError` (stderr attached) when ``cmd`` fails.
    """

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err)
        peak, seen = 0, {}
        while proc.poll() is None:
            tree = process_tree(proc.pid)
            seen |= tree
            peak = max(peak, sum(pss_kib(p) for p in tree))
            time.sleep(interval)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd, stdout, stderr)
    seen.pop(proc.pid, None)
    return stdout, peak, seen


def run_json_child(
    cmd: list[str], interval: float = 0.5
) -> tuple[dict, int, dict[int, int]]:
    """`run_peak_pss` of a child whose last stdout line is its JSON result.

    Returns (that result, peak KiB, descendants seen). A failing child's stderr tail
    goes to ours before `subprocess.CalledProcessError` is raised: its traceback.
    """
    try:
        stdout, peak, seen = run_peak_pss(cmd, interval)
    except subprocess.CalledProcessError as exc:
        sys.stderr.write(exc.stderr[-20_000:])
        raise
    return json.loads(stdout.strip().splitlines()[-1]), peak, seen


LOADER_BATCH = 512


def loader_workload(steps: int):
    """The graph and config the training benchmarks run (train_throughput, _scaling).

    20k items, 10k users, 500k edges; 30 walks and top 10 a node; one epoch of
    ``steps`` minibatches of `LOADER_BATCH` pairs, no hard negatives and no
    checkpoints, so that what is timed is batch making and the training step.
    """
    from pinsage.config import ModelConfig, PipelineConfig, SamplerConfig, TrainConfig

    graph = synthetic_graph(20_000, 10_000, 500_000)
    # Two layers and both objectives, as when the loader figures were first taken
    # (the embedded default has since become the one-layer Gowalla recipe).
    cfg = PipelineConfig(
        sampler=SamplerConfig(num_walks=30, top_k=10, num_layers=2),
        model=ModelConfig(context_id_embedding=True),
        train=TrainConfig(
            epochs=1,
            steps_per_epoch=steps,
            batch_size=LOADER_BATCH,
            objective="both",
            in_batch_negatives=False,
            checkpoint_every=0,
            max_hard_negatives=0,
        ),
    )
    return graph, cfg
