"""The bulk embedding job: a trained run + its graph -> an embeddings folder.

Phases, each timed and logged: load (checkpoint, graph, features, model),
neighbourhoods (with the run's ``sampler`` config and seed: the same table the local
engine and evaluation use), layers (the chosen engine), write. The folder is built in
a temporary sibling and renamed into place; a folder already complete for the same
checkpoint and graph is left alone unless ``overwrite``.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from pinsage.atomic import atomic_dir, file_sha256, publish
from pinsage.config import EMBED_ENGINES, PipelineConfig
from pinsage.errors import CheckpointError, ConfigError
from pinsage.features import FeatureStore
from pinsage.graph.store import Graph, load_graph
from pinsage.infer.local import embed_all
from pinsage.infer.neighborhoods import write_neighborhoods
from pinsage.infer.output import CONTEXTS_DIR, Batches, matrix_batches, write_parts
from pinsage.infer.ray_engine import RayOptions, check_supported, embed_ray
from pinsage.manifests import EmbeddingsManifest
from pinsage.nn.model import PinSageModel
from pinsage.ray_session import cluster_address, ray_session
from pinsage.run import latest_checkpoint, load_run
from pinsage.sampler.table import neighborhood_table
from pinsage.threads import fit_torch_threads

__all__ = ["ENGINES", "embed"]

log = logging.getLogger(__name__)

ENGINES = EMBED_ENGINES
# `auto` runs the local engine while its estimate stays under this share of the
# memory available: Ray's fixed cost (~2.5 s a job, 4-5 s to start Ray) dominates small
# graphs, and the local engine is faster on one machine (docs/inference.md).
LOCAL_MEMORY_SHARE = 0.25


class Phases:
    """Wall time per phase, logged as each one ends."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def done(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = round(now - self._start, 3)
        log.info("embed: %s took %.1fs", phase, now - self._start)
        self._start = now


def latest_checkpoint_path(run_dir: Path) -> Path:
    """The run's latest checkpoint file; `CheckpointError` when it has none."""
    path = latest_checkpoint(run_dir)
    if path is None or not path.exists():
        raise CheckpointError(
            f"{run_dir}: no checkpoint (checkpoints/latest missing or dangling); pass "
            "a folder written by `pinsage train --out RUN` once it has checkpointed."
        )
    return path


def _write(
    tmp: Path, graph: Graph, items: Batches, contexts: Batches | None
) -> tuple[int, int, int | None]:
    """Write the item (and context) parts; return (items, dim, contexts or None)."""
    count, dim = write_parts(tmp, "item", graph.item_ids, items)
    if contexts is None:
        return count, dim, None
    num_contexts, _ = write_parts(
        tmp / CONTEXTS_DIR, "context", graph.context_ids, contexts
    )
    return count, dim, num_contexts


def _run_local(
    model: PinSageModel,
    store: FeatureStore,
    graph: Graph,
    cfg: PipelineConfig,
    tmp: Path,
    contexts: bool,
    phases: Phases,
) -> tuple[int, int, int | None]:
    sampler = cfg.sampler.for_inference()
    item_table = neighborhood_table(graph.csr, sampler)
    context_table = (
        neighborhood_table(graph.csr, sampler, contexts=True) if contexts else None
    )
    phases.done("neighbourhoods")
    z_items, z_contexts = embed_all(model, store, item_table, context_table)
    phases.done("layers")
    ctx = None if z_contexts is None else matrix_batches(z_contexts.numpy())
    counts = _write(tmp, graph, matrix_batches(z_items.numpy()), ctx)
    phases.done("write")
    return counts


def _run_ray(
    model: PinSageModel,
    store: FeatureStore,
    graph: Graph,
    cfg: PipelineConfig,
    tmp: Path,
    contexts: bool,
    phases: Phases,
    options: RayOptions,
) -> tuple[int, int, int | None]:
    # Inside the temporary folder: Ray tasks write it, and it is gone with the folder
    # on failure. On a cluster `out` must therefore be on storage every node sees.
    scratch = tmp / "_neighborhoods"
    tables = {"items": (graph.num_items, False)}
    if contexts:
        tables["contexts"] = (graph.num_contexts, True)
    with ray_session(options.address, options.num_cpus):
        for name, (num_nodes, of_contexts) in tables.items():
            write_neighborhoods(
                graph.path,
                cfg.sampler.for_inference(),
                scratch / name,
                num_nodes=num_nodes,
                contexts=of_contexts,
                chunks_per_part=options.chunks_per_task,
                max_in_flight=2 * options.concurrency,
            )
        phases.done("neighbourhoods")
        z_items, z_contexts = embed_ray(
            model,
            store,
            scratch / "items",
            scratch / "contexts" if contexts else None,
            num_contexts=graph.num_contexts,
            options=options,
        )
        phases.done("layers")
        counts = _write(tmp, graph, z_items, z_contexts)
    shutil.rmtree(scratch)
    phases.done("write")
    return counts


def available_memory() -> int:
    """Bytes of memory available to new work (MemAvailable; else all of it)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def local_engine_bytes(graph: Graph, cfg: PipelineConfig) -> int:
    """About the most memory the local engine holds: tables and layer vectors.

    The neighbourhood tables (ids and visits int64, weights float32: 20 bytes a
    slot) and, per node, a few float32 vectors of the widest layer.
    """
    nodes = graph.num_items + graph.num_contexts
    slots = cfg.sampler.for_inference().top_k
    width = max(cfg.model.dim, cfg.model.hidden_dim, cfg.model.out_dim)
    return nodes * (20 * slots + 4 * width * (cfg.sampler.num_layers + 2))


def choose_engine(
    engine: str, graph: Graph, cfg: PipelineConfig, address: str | None
) -> tuple[str, str]:
    """The engine to run (``auto`` resolved) and why, for the log and the manifest."""
    if engine != "auto":
        return engine, "asked for"
    if address is not None:
        return "ray", f"auto: a Ray cluster address is given ({address})"
    need, have = local_engine_bytes(graph, cfg), available_memory()
    sizes = f"about {need / 2**30:.2f} GiB for {graph.num_items:,} items"
    if need <= LOCAL_MEMORY_SHARE * have:
        return "local", f"auto: {sizes}, {have / 2**30:.1f} GiB available"
    return "ray", (
        f"auto: {sizes} is over {LOCAL_MEMORY_SHARE:.0%} of the "
        f"{have / 2**30:.1f} GiB available"
    )


def reusable_manifest(
    out: Path, key: dict, contexts: bool, overwrite: bool
) -> EmbeddingsManifest | None:
    """The manifest of ``out`` if it is complete for ``key``: nothing to do.

    None means: compute (``out`` is absent, or ``overwrite``). Raises `ConfigError`
    when ``out`` exists but holds something else and ``overwrite`` is false.
    """
    if overwrite:
        return None
    manifest = EmbeddingsManifest.read_current(out, key)
    if manifest is not None and (manifest.contexts is not None or not contexts):
        return manifest
    if out.exists():
        raise ConfigError(
            f"{out} exists but does not hold complete embeddings of this checkpoint "
            f"and graph{' with contexts' if contexts else ''}; pass overwrite=True "
            "(`pinsage embed --overwrite`) to replace it, or choose another folder."
        )
    return None


def embed(
    run_dir: Path,
    graph_dir: Path,
    out: Path,
    *,
    engine: str = "auto",
    ray_address: str | None = None,
    contexts: bool = False,
    overwrite: bool = False,
    options: RayOptions | None = None,
) -> EmbeddingsManifest:
    """Embed every item (and context) of ``graph_dir`` with the run's latest checkpoint.

    ``engine`` is ``ray`` (map / join / reduce on Ray Data; ``ray_address`` or
    ``options.address`` picks a cluster, else $RAY_ADDRESS, else a local Ray),
    ``local`` (the same layers in torch, in process) or ``auto``
    (`choose_engine`). Returns the manifest of ``out``.

    Raises:
        CheckpointError: no checkpoint in ``run_dir``, or it does not fit the graph.
        DataError: ``graph_dir`` is not a complete graph.
        ConfigError: unknown engine, bad options, or ``out`` exists and holds other
            embeddings (pass ``overwrite``).
    """
    options = _ray_options(engine, options, ray_address)
    out, phases = Path(out), Phases()
    checkpoint_path = latest_checkpoint_path(run_dir)
    graph = load_graph(graph_dir)
    key = {"checkpoint_sha256": file_sha256(checkpoint_path)}
    key["graph_sources"] = graph.manifest.sources
    if (existing := reusable_manifest(out, key, contexts, overwrite)) is not None:
        log.info("%s already holds these embeddings; nothing to do", out)
        return existing
    run = load_run(run_dir, graph, where=checkpoint_path)
    model, store, cfg = run.model, run.store, run.config
    fit_torch_threads(cfg.execution.torch_threads)
    engine, why = choose_engine(engine, graph, cfg, cluster_address(options.address))
    log.info("embed: the %s engine (%s)", engine, why)
    if engine == "ray":
        check_supported(model)  # before starting Ray
    phases.done("load")
    with atomic_dir(out, overwrite=True) as tmp:
        if engine == "ray":
            counts = _run_ray(model, store, graph, cfg, tmp, contexts, phases, options)
        else:
            counts = _run_local(model, store, graph, cfg, tmp, contexts, phases)
        count, dim, num_contexts = counts
        manifest = EmbeddingsManifest(
            count=count,
            dim=dim,
            contexts=num_contexts,
            **key,
            checkpoint=str(checkpoint_path),
            step=run.step,
            graph=str(graph.path),
            engine=engine,
            engine_reason=why,
            seed=cfg.sampler.seed,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
            seconds=phases.seconds,
        )
        publish(tmp, manifest.to_json())
    _log_done(manifest, out)
    return manifest


def _log_done(manifest: EmbeddingsManifest, out: Path) -> None:
    contexts = manifest.contexts
    log.info(
        "embedded %d items%s (dim %d) with the %s engine into %s",
        manifest.count,
        "" if contexts is None else f" and {contexts} contexts",
        manifest.dim,
        manifest.engine,
        out,
    )


def _ray_options(
    engine: str, options: RayOptions | None, ray_address: str | None
) -> RayOptions:
    """The Ray engine's options (``ray_address`` wins); `ConfigError` if no engine."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine '{engine}'; expected one of {ENGINES}")
    options = options or RayOptions()
    return options if ray_address is None else replace(options, address=ray_address)
