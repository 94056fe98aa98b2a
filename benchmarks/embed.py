"""Bulk embedding inference: Ray engine vs local engine vs naive minibatches, one run.

Items/s at 10k, 100k and 1M items (synthetic graphs with item features, 20
interactions per item, users = items / 2; 2 layers, top_k = T = 50, dim = hidden_dim =
out_dim = 128; the run is that config trained 1 step; all cached under .bench/):

- ray: `pinsage.infer.embed(engine="ray")` on a Ray started in-process, with the
  default join (``auto``: a broadcast join at these sizes);
- ray-shuffle: the same with Ray Data's hash-shuffle join (``join="shuffle"``), up to
  ``SHUFFLE_MAX_ITEMS``: above it the shuffle would move E x 128 floats (26 GB at 1M
  items) through the object store per layer, spilling to disk on this machine;
- local: `pinsage.infer.embed(engine="local")`: every layer of every item once, torch;
- naive: every minibatch of 512 items gets its own K-hop computation graph
  (`build_blocks` over the neighbourhood table) and the training-time forward, nothing
  shared between minibatches; above 20k items, on a fixed random sample of 20k
  ("sampled_items").

The neighbourhood table costs the same whatever embeds: "table" records time it alone
(serial `neighborhood_table`). `embed()` always samples its own, so the ray and local
figures are its "layers" phase (engine compute) with its own table ("neighbourhoods"),
write, load and Ray's start-up and shutdown reported apart; naive times its loop on
the saved table. No engine's items_per_s includes a table; items_per_s_with_table
does. Each measurement runs in a fresh subprocess (this script with ``--one ENGINE
--items N``); the parent samples the summed PSS of it and all its descendants (Ray's
raylet, workers and object store included) every 0.5 s and reports the peak. Ratios
(ray/naive, local/naive, ray/local) and scaling (items/s relative to the smallest
size) are measured in the same run; figures are medians of ``--repeats`` (default 3
below 1M items, 1 from 1M), engines alternating. Prints JSON lines, the machine first.

    python benchmarks/embed.py [--sizes 10000,100000,1000000]
        [--engines ray,local,naive] [--repeats R] [--ray-options '{"concurrency": 2}']
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    CACHE,
    alive,
    emit,
    machine,
    run_json_child,
    synthetic_graph,
)

ENGINES = ("ray", "ray-shuffle", "local", "naive")
SHUFFLE_MAX_ITEMS = 100_000
EDGES_PER_ITEM = 20
TOP_K, LAYERS, DIM = 50, 2, 128
NAIVE_BATCH = 512
NAIVE_SAMPLE = 20_000  # naive runs on at most this many items (a fixed random sample)
SAMPLE_INTERVAL = 0.5  # seconds between PSS samples
LINGER = 10.0  # seconds a child's descendants may take to exit after it


def _config():
    from pinsage.config import (
        ExecutionConfig,
        ModelConfig,
        PipelineConfig,
        SamplerConfig,
    )

    # Inference as in training (top TOP_K of 100 walks), a per-user ID: the setting of
    # the published figures, whatever the embedded default becomes.
    return PipelineConfig(
        sampler=SamplerConfig(
            top_k=TOP_K, num_layers=LAYERS, infer_num_walks=None, infer_top_k=None
        ),
        model=ModelConfig(
            dim=DIM, hidden_dim=DIM, out_dim=DIM, context_id_embedding=True
        ),
        execution=ExecutionConfig(device="cpu", producers=0),
    )


def _graph(items: int) -> Path:
    return synthetic_graph(items, items // 2, items * EDGES_PER_ITEM, features=True)


def _paths(items: int) -> dict[str, Path]:
    tag = f"{items}-t{TOP_K}-k{LAYERS}-d{DIM}"
    return {
        "run": CACHE / f"embed-run-{tag}",
        "table": CACHE / f"embed-table-{tag}.pt",
        "out": CACHE / f"embed-out-{tag}",
    }


# ---------------------------------------------------------------- child side


def _prepare(items: int) -> dict:
    """Graph and a 1-step run (both cached)."""
    from pinsage.run import latest_checkpoint
    from pinsage.train import train

    t0 = time.perf_counter()
    graph_dir = _graph(items)
    graph_seconds = time.perf_counter() - t0
    run = _paths(items)["run"]
    t0 = time.perf_counter()
    if latest_checkpoint(run) is None:
        shutil.rmtree(run, ignore_errors=True)
        train(_config(), graph_dir, run, until_step=1)
    train_seconds = time.perf_counter() - t0
    manifest = json.loads((graph_dir / "manifest.json").read_text())
    return {
        "graph": str(graph_dir),
        "run": str(run),
        "num_items": manifest["num_items"],
        "num_contexts": manifest["num_contexts"],
        "num_edges": manifest["num_edges"],
        "features": [f["name"] for f in manifest["features"]],
        "graph_seconds": round(graph_seconds, 2),
        "train_seconds": round(train_seconds, 2),
    }


def _load(items: int):
    """(cfg, graph, store, model) of the cached run, model in eval mode."""
    from pinsage.graph import load_graph
    from pinsage.run import load_run

    graph = load_graph(_graph(items))
    run = load_run(_paths(items)["run"], graph)
    return run.config, graph, run.store, run.model


def _table(items: int) -> dict:
    """Time the item neighbourhood table; save it for the naive runs."""
    import torch

    from pinsage.sampler import neighborhood_table

    cfg, graph, _, _ = _load(items)
    t0 = time.perf_counter()
    table = neighborhood_table(graph.csr, cfg.sampler)
    seconds = time.perf_counter() - t0
    path = _paths(items)["table"]
    tmp = path.with_name(path.name + ".tmp")
    torch.save(tuple(table), tmp)
    os.replace(tmp, path)
    return {"seconds": seconds, "count": table.ids.shape[0]}


def _saved_table(items: int):
    from pinsage.run import read_tensors
    from pinsage.sampler import Neighbors

    return Neighbors(*read_tensors(_paths(items)["table"]))


def _engine(items: int, engine: str, ray_options: dict) -> dict:
    """`embed()` with ``engine``; its per-phase seconds, and Ray's start and stop.

    `embed()` always samples its own neighbourhoods ("neighbourhoods" phase: serial
    `neighborhood_table` for local, Ray tasks writing Parquet for ray), then runs the
    layers ("layers": the engine compute timed here), then writes Parquet ("write").
    Ray is started before `embed()` the way it would start it (`ray_session`), so its
    start-up is timed on its own and the phases exclude it.
    """
    from contextlib import nullcontext

    from pinsage.infer import RayOptions, embed
    from pinsage.ray_session import ray_session

    options = RayOptions(**ray_options)
    if engine == "ray-shuffle":
        options = replace(options, join="shuffle")
    run, graph_dir, out = _paths(items)["run"], _graph(items), _paths(items)["out"]
    out = out.with_name(f"{out.name}-{engine}")
    on_ray = engine.startswith("ray")
    session = nullcontext()
    if on_ray:
        session = ray_session(options.address, options.num_cpus)
    t0 = time.perf_counter()
    with session:
        t1 = time.perf_counter()
        manifest = embed(
            run,
            graph_dir,
            out,
            engine="ray" if on_ray else engine,
            overwrite=True,
            options=options,
        )
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    phases = manifest.seconds
    result = {
        "seconds": phases["layers"],
        "count": manifest.count,
        "dim": manifest.dim,
        "load_seconds": phases["load"],
        "table_seconds": phases["neighbourhoods"],
        "write_seconds": phases["write"],
        "embed_seconds": t2 - t1,
        "out": str(out),
    }
    if on_ray:
        result |= {"ray_init_seconds": t1 - t0, "ray_shutdown_seconds": t3 - t2}
    return result


def _compare(items: int) -> dict:
    """Largest difference between the ray and the local engine's vectors."""
    import numpy as np

    from pinsage.infer import read_embeddings

    out = _paths(items)["out"]
    (ids_r, z_r), (ids_l, z_l) = (
        read_embeddings(out.with_name(f"{out.name}-{e}")) for e in ("ray", "local")
    )
    order_r, order_l = np.argsort(ids_r), np.argsort(ids_l)
    same_ids = bool(np.array_equal(ids_r[order_r], ids_l[order_l]))
    diff = np.abs(z_r[order_r] - z_l[order_l]).max() if same_ids else None
    return {"same_ids": same_ids, "max_abs_diff": None if diff is None else float(diff)}


def _naive(items: int) -> dict:
    import torch

    from pinsage.sampler import build_blocks, table_lookup

    cfg, graph, store, model = _load(items)
    lookup = table_lookup(_saved_table(items))
    n = graph.num_items
    gen = torch.Generator().manual_seed(0)
    sample = (
        torch.randperm(n, generator=gen)[:NAIVE_SAMPLE] if n > NAIVE_SAMPLE else None
    )
    seeds = sample if sample is not None else torch.arange(n)
    t0 = time.perf_counter()
    count = 0
    with torch.no_grad():
        for lo in range(0, seeds.numel(), NAIVE_BATCH):
            cg = build_blocks(
                seeds[lo : lo + NAIVE_BATCH], cfg.sampler.num_layers, lookup
            )
            count += model(cg, store.gather(cg.input_nodes)).shape[0]
    return {
        "seconds": time.perf_counter() - t0,
        "count": count,
        "sampled_items": None if sample is None else count,
    }


CHILD = {
    "prepare": _prepare,
    "table": _table,
    "naive": _naive,
    "compare": _compare,
    "ray": None,
    "ray-shuffle": None,
    "local": None,
}


def _child(what: str, items: int, ray_options: dict) -> None:
    if what in ("ray", "ray-shuffle", "local"):
        result = _engine(items, what, ray_options)
    else:
        result = CHILD[what](items)
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------- parent side


def _measure(what: str, items: int, ray_options: dict | None = None) -> dict:
    """Run one child; its JSON result plus the peak PSS of its process tree."""
    cmd = [sys.executable, __file__, "--one", what, "--items", str(items)]
    cmd += ["--ray-options", json.dumps(ray_options or {})]
    result, peak_kib, seen = run_json_child(cmd, SAMPLE_INTERVAL)
    result["peak_pss_mib"] = peak_kib / 1024
    result["processes_seen"] = 1 + len(seen)
    # Descendants still running LINGER seconds after the child ended (a Ray left
    # behind) are ours: name them in the record and end them.
    deadline = time.monotonic() + LINGER
    while (left := [p for p, t in seen.items() if alive(p, t)]) and (
        time.monotonic() < deadline
    ):
        time.sleep(0.5)
    result["leftover_processes"] = [_comm(p) for p in left]
    for pid in left:
        os.kill(pid, signal.SIGTERM)
    return result


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


_TREE_KEYS = ("peak_pss_mib", "processes_seen", "leftover_processes")


def _median(runs: list[dict], key: str, digits: int = 3) -> float:
    return round(statistics.median(r[key] for r in runs), digits)


def _engine_record(engine: str, rs: list[dict], size: int, table_s: float) -> dict:
    """The medians of one engine's runs at one size."""
    rate = statistics.median(r["count"] / r["seconds"] for r in rs)
    record = {
        "engine": engine,
        "seconds": _median(rs, "seconds"),
        "count": rs[0]["count"],
        "items_per_s": round(rate, 1),
        "includes_table": False,
        "peak_pss_mib": round(_median(rs, "peak_pss_mib")),
        "processes_seen": max(r["processes_seen"] for r in rs),
        "leftover_processes": sorted(
            {name for r in rs for name in r["leftover_processes"]}
        ),
    }
    if engine == "naive":
        # Neither load nor a table in the timed loop; the whole job would be the table
        # and then every item at this rate.
        record |= {
            "batch": NAIVE_BATCH,
            "sampled_items": rs[0]["sampled_items"],
            "items_per_s_with_table": round(size / (table_s + size / rate), 1),
            "table_note": "table loaded from the 'table' run; its time not included",
        }
        return record
    own_table = _median(rs, "table_seconds")
    record |= {
        "table_seconds": own_table,
        "write_seconds": _median(rs, "write_seconds"),
        "load_seconds": _median(rs, "load_seconds"),
        "embed_seconds": _median(rs, "embed_seconds"),
        "items_per_s_with_table": round(
            statistics.median(
                r["count"] / (r["seconds"] + r["table_seconds"]) for r in rs
            ),
            1,
        ),
        "table_note": (
            "seconds = embed() 'layers' phase; its own table ('neighbourhoods' "
            "phase: "
            + ("serial, in torch" if engine == "local" else "Ray tasks writing Parquet")
            + "), the output write and the load are timed apart"
        ),
    }
    if engine != "local":
        record |= {
            "ray_init_seconds": _median(rs, "ray_init_seconds"),
            "ray_shutdown_seconds": _median(rs, "ray_shutdown_seconds"),
        }
    return record


def _cost_lines(rates: dict[int, dict[str, float]]) -> dict:
    """Per engine, seconds = fixed + per-item cost x items.

    The per-item cost is the slope between the two largest sizes (the marginal cost,
    where the fixed part is smallest beside the rest); the fixed part is what the
    smallest size took beyond its items at that cost: for Ray, the actors starting
    and fetching the model, and scheduling, paid whatever the job's size.
    """
    lines = {}
    for engine in {e for by_engine in rates.values() for e in by_engine}:
        sizes = sorted(n for n in rates if engine in rates[n])
        if len(sizes) < 2 or engine == "naive":  # naive's rate is on a sample
            continue
        seconds = [n / rates[n][engine] for n in sizes]
        slope = (seconds[-1] - seconds[-2]) / (sizes[-1] - sizes[-2])
        lines[engine] = {
            "fixed_seconds": round(seconds[0] - sizes[0] * slope, 2),
            "us_per_item": round(slope * 1e6, 2),
        }
    return {"bench": "embed", "seconds_vs_items": lines, "sizes": sorted(rates)}


def _arguments() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--engines", default=",".join(ENGINES))
    parser.add_argument(
        "--repeats", type=int, default=None, help="default: 3 below 1M items, 1 from 1M"
    )
    parser.add_argument(
        "--ray-options",
        default="{}",
        help="RayOptions fields as JSON, e.g. '{\"concurrency\": 2}'",
    )
    parser.add_argument("--one", choices=[*CHILD], help=argparse.SUPPRESS)
    parser.add_argument("--items", type=int, help=argparse.SUPPRESS)
    return parser


def _table_record(common: dict, size: int, repeats: int) -> tuple[dict, float]:
    """The neighbourhood table's line and its median seconds."""
    tables = [_measure("table", size) for _ in range(repeats)]
    table_seconds = _median(tables, "seconds")
    record = common | {
        "engine": "table",
        "seconds": table_seconds,
        "items_per_s": round(size / table_seconds, 1),
        "peak_pss_mib": round(_median(tables, "peak_pss_mib")),
        "note": "item neighbourhood table (random walks), serial, in torch",
    }
    return record, table_seconds


def _engines_at(engines: list[str], size: int, common: dict) -> list[str]:
    """The engines measured at ``size``: the hash join stops at SHUFFLE_MAX_ITEMS."""
    if "ray-shuffle" not in engines or size <= SHUFFLE_MAX_ITEMS:
        return engines
    emit(
        common
        | {
            "engine": "ray-shuffle",
            "skipped": f"above {SHUFFLE_MAX_ITEMS} items the hash join would "
            f"shuffle {size * TOP_K * DIM * 4 / 1e9:.0f} GB of messages per "
            "layer through the object store",
        }
    )
    return [e for e in engines if e != "ray-shuffle"]


def _ratios_record(size: int, rates: dict[str, float], engines: list[str]) -> dict:
    """Items/s of each engine over its baseline, and (ray and local) their diff."""
    pairs = (
        ("ray", "naive"),
        ("local", "naive"),
        ("ray", "local"),
        ("ray", "ray-shuffle"),
    )
    ratios = {
        f"{a}_over_{b}": round(rates[a] / rates[b], 2)
        for a, b in pairs
        if a in rates and b in rates
    }
    record = {"bench": "embed", "items": size, "items_per_s_ratios": ratios}
    if "ray" in engines and "local" in engines:
        compare = _measure("compare", size)
        record["ray_vs_local"] = {
            k: v for k, v in compare.items() if k not in _TREE_KEYS
        }
    return record if ratios else {}


def _one_size(
    size: int, engines: list[str], repeats: int, ray_options: dict
) -> dict[str, float]:
    """Measure every engine on one graph size; emit its lines; items/s by engine."""
    t0 = time.perf_counter()
    prep = _measure("prepare", size)
    emit(
        {
            "bench": "embed",
            "stage": "prepare",
            "items": size,
            **{k: v for k, v in prep.items() if k not in _TREE_KEYS},
            "wall_seconds": round(time.perf_counter() - t0, 2),
        }
    )
    common = {
        "bench": "embed",
        "items": size,
        "users": prep["num_contexts"],
        "edges": prep["num_edges"],
        "top_k": TOP_K,
        "layers": LAYERS,
        "dim": DIM,
        "repeats": repeats,
    }
    table, table_seconds = _table_record(common, size, repeats)
    emit(table)
    here = _engines_at(engines, size, common)
    runs: dict[str, list[dict]] = {e: [] for e in here}
    for _ in range(repeats):  # engines alternate: machine noise hits all alike
        for engine in here:
            runs[engine].append(_measure(engine, size, ray_options))
    rates = {}
    for engine in here:
        record = _engine_record(engine, runs[engine], size, table_seconds)
        rates[engine] = record["items_per_s"]
        emit(common | record)
    if ratios := _ratios_record(size, rates, engines):
        emit(ratios)
    return rates


def _scaling_record(
    rates: dict[int, dict[str, float]], sizes: list[int], engines: list[str]
) -> dict:
    """Each engine's items/s at every size relative to the smallest size's."""
    base = min(sizes)
    relative = {
        engine: {
            str(size): round(rates[size][engine] / rates[base][engine], 3)
            for size in sizes
            if engine in rates[size]
        }
        for engine in engines
    }
    return {
        "bench": "embed",
        "scaling_vs_items": base,
        "items_per_s_relative": relative,
    }


def main() -> None:
    parser = _arguments()
    args = parser.parse_args()
    ray_options = json.loads(args.ray_options)
    if args.one:
        _child(args.one, args.items, ray_options)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    engines = [e for e in args.engines.split(",") if e]
    if unknown := set(engines) - set(ENGINES):
        parser.error(f"unknown engines {sorted(unknown)}; choose from {ENGINES}")
    from pinsage.infer import RayOptions

    emit(
        {
            "bench": "embed",
            "machine": machine(),
            "ray_options": asdict(RayOptions(**ray_options)),
            "pss_sample_seconds": SAMPLE_INTERVAL,
        }
    )
    rates: dict[int, dict[str, float]] = {}
    for size in sizes:
        repeats = args.repeats or (1 if size >= 1_000_000 else 3)
        rates[size] = _one_size(size, engines, repeats, ray_options)
    if len(sizes) > 1:
        emit(_cost_lines(rates))
        emit(_scaling_record(rates, sizes, engines))


if __name__ == "__main__":
    main()
