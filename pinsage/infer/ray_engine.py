"""The Ray engine: DESIGN.md's map / join / reduce per layer, on Ray.

Layer k, over all items at once:

    map:    m = Message_k(h)                        model actors, batches of items
    join:   (dst, src, alpha) ⋈ m on src
    reduce: group by dst: n_u = Σ alpha m_src
    update: h' = Update_k(h ⟕ n on node)            no neighbours -> n = 0

The join runs one of two ways (``RayOptions.join``), as a SQL engine would choose:

- ``broadcast`` (a map-side join, `ray_pool`): the messages, one row per node, go to
  the object store as one matrix; each call takes one part of the table (all rows of
  a range of destinations, as they were written), gathers its sources' rows and pools
  them (`Gather`). Nothing is shuffled: a layer moves N x width floats, not E x width.
  One pool of model actors serves every layer of the job.
- ``shuffle`` (here, on Ray Data): a hash join of the table with the messages on
  ``src``, a hash partition on ``dst`` and one vectorised pool per partition, then a
  left join with every destination. It moves E = N x T message copies through the
  object store, and it is the path for catalogues whose messages do not fit in one
  node's memory.

``auto`` broadcasts when the broadcast matrices fit in ``broadcast_limit_mb``.

Either way layer k's update and layer k+1's map run in one pass (a `Chain` of stages
per batch), and that pass is complete before anything reads it, so every node's
layer-k vector is computed once. The last item layer applies the head. The context
layer mirrors `embed_all`: ``context_conv`` messages of the last-but-one item vectors
(computed in the same pass as those vectors), joined with the context table, updated
with the model's context input as destination, then the head. The same code runs on a
local Ray started in-process or on a cluster (``RayOptions.address``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import ray
import ray.data
from ray.data import Dataset
from tqdm.auto import tqdm

from pinsage.errors import ConfigError
from pinsage.features import FeatureStore
from pinsage.infer.output import Batches, matrix_batches
from pinsage.infer.ray_pool import embed_broadcast
from pinsage.infer.stages import (
    Chain,
    Project,
    Update,
    message_steps,
    message_width,
    pool,
)
from pinsage.nn.model import PinSageModel

__all__ = [
    "JOINS",
    "RAY_AGGREGATORS",
    "RayOptions",
    "check_supported",
    "embed_ray",
]

log = logging.getLogger(__name__)

# The reduce sees one destination's messages and nothing else: attention also needs
# the destination's own vector, so it stays with the local engine.
RAY_AGGREGATORS = ("importance", "mean", "max")
JOINS = ("auto", "broadcast", "shuffle")


@dataclass(frozen=True)
class RayOptions:
    """How the Ray engine runs; the defaults suit a laptop.

    Args:
        address: a Ray cluster to connect to (``"auto"``, ``"ray://host:10001"``);
            None starts a local Ray in-process.
        num_cpus: CPUs of the local Ray; None uses every core.
        concurrency: model actors: the job's one pool (broadcast join), or each map
            stage's (shuffle join).
        batch_size: rows per model call in the map stages.
        num_partitions: hash partitions of every join and group-by; more partitions
            mean smaller ones (less memory per reduce task).
        chunks_per_task: neighbourhood sampling, ``CHUNK``-node blocks per Ray task
            (one Parquet part each).
        join: ``auto``, ``broadcast`` or ``shuffle`` (see the module docstring).
        broadcast_limit_mb: ``auto`` broadcasts while a layer's node vectors and
            messages take at most this many MB.
    """

    address: str | None = None
    num_cpus: int | None = None
    concurrency: int = 2  # two model actors keep a laptop's cores busy
    batch_size: int = 4096  # rows per model call: large enough to amortise the call
    num_partitions: int = 8  # a few partitions per core; raise on a cluster
    chunks_per_task: int = 1  # one CHUNK per task: fine-grained retries
    join: str = "auto"
    # 2 GB: 2M items at 128 + 128 floats; every worker maps the same shared copy.
    broadcast_limit_mb: int = 2048

    def __post_init__(self) -> None:
        if self.join not in JOINS:
            raise ConfigError(
                f"RayOptions.join must be one of {list(JOINS)}, got '{self.join}'"
            )
        names = (
            "concurrency",
            "batch_size",
            "num_partitions",
            "chunks_per_task",
            "broadcast_limit_mb",
        )
        for name in names:
            if getattr(self, name) < 1:
                raise ConfigError(
                    f"RayOptions.{name} must be >= 1, got {getattr(self, name)}"
                )
        if self.num_cpus is not None and self.num_cpus < 1:
            raise ConfigError(f"RayOptions.num_cpus must be >= 1, got {self.num_cpus}")


def check_supported(model: PinSageModel) -> None:
    """Raise `ConfigError` if the Ray engine cannot run ``model``'s aggregator."""
    if model.aggregator not in RAY_AGGREGATORS:
        raise ConfigError(
            f"the Ray engine pools neighbourhoods with {list(RAY_AGGREGATORS)} only; "
            f"this model's aggregator is '{model.aggregator}'. Use engine='local' "
            "(`pinsage embed --engine local`)."
        )


def _model_map(
    ds: Dataset, model_box: list, steps: list, options: RayOptions
) -> Dataset:
    """Model stages (a `Chain` of ``steps``) over ``ds`` on actors; materialised.

    ``ds`` must be materialised: a pool holds its CPUs from the start of its dataset's
    execution, so tasks upstream of it in the same dataset could starve (with
    ``concurrency`` >= CPUs they never run). A dead actor is restarted and its batch
    re-run: Ray Data's actor pools default to unlimited restarts and task retries
    (``max_restarts=-1``, ``max_task_retries=-1``), which the fault-tolerance test
    relies on; Ray deprecates setting them through ``ray_remote_args``.
    """
    return ds.map_batches(
        Chain,
        fn_constructor_args=(model_box, steps),
        compute=ray.data.ActorPoolStrategy(min_size=1, max_size=options.concurrency),
        batch_size=options.batch_size,
        batch_format="pyarrow",
        num_cpus=1,
    ).materialize()


def _pooled(
    rows: Dataset,
    sources: Dataset,
    column: str,
    kind: str,
    width: int,
    options: RayOptions,
) -> Dataset:
    """Join + reduce: {node, n} for every destination with at least one neighbour.

    ``rows`` {dst, src, alpha} is a neighbourhood table, ``sources`` holds the
    messages in ``column``.
    """
    messages = sources.select_columns(["node", column]).rename_columns(
        {"node": "src", column: "m"}
    )
    joined = rows.join(
        messages, join_type="inner", num_partitions=options.num_partitions, on=("src",)
    )  # {dst, src, alpha, m}
    # The group-by: a hash partition on dst puts all of a destination's rows in one
    # block (the guarantee `map_groups` itself builds on), so one vectorised call
    # pools a whole block, not one Python call per destination (measured 250 us
    # each: over 8 minutes for two layers of a million items).
    by_dst = joined.repartition(options.num_partitions, keys=["dst"])
    return by_dst.map_batches(
        pool,
        batch_size=None,
        batch_format="pyarrow",
        fn_kwargs={"kind": kind, "width": width},
    )


def _with_pooled(dst: Dataset, pooled: Dataset, options: RayOptions) -> Dataset:
    """Every destination in ``dst`` with its ``n`` (null: no neighbours); stored."""
    return dst.join(
        pooled,
        join_type="left_outer",
        num_partitions=options.num_partitions,
        on=("node",),
    ).materialize()


def _nodes(count: int, options: RayOptions) -> Dataset:
    """{node} for nodes ``0..count-1``, one block per map batch; materialised."""
    blocks = max(1, math.ceil(count / options.batch_size))
    nodes = ray.data.range(count, override_num_blocks=blocks)
    return nodes.rename_columns({"id": "node"}).materialize()


def _broadcasts(model: PinSageModel, store: FeatureStore, options: RayOptions) -> bool:
    """Whether the joins broadcast (``auto``: a layer's vectors fit the limit)."""
    widest = max(conv.dst_dim + conv.hidden_dim for conv in model.convs)
    fits = store.num_items * widest * 4 <= options.broadcast_limit_mb * 1e6
    return options.join == "broadcast" or (options.join == "auto" and fits)


class _LayerClock:
    """The layers' progress bar, and a log line with each layer's time."""

    def __init__(self, layers: int) -> None:
        self.bar = tqdm(total=layers, desc="ray layers", unit="layer", disable=None)
        self.start = time.perf_counter()

    def done(self, what: str) -> None:
        log.info("ray engine: %s took %.1fs", what, time.perf_counter() - self.start)
        self.start = time.perf_counter()
        self.bar.update()


def _shuffle_layer(
    rows: Path,
    sources: Dataset,
    column: str,
    *,
    items: bool,
    num_dst: int,
    width: int,
    kind: str,
    options: RayOptions,
) -> Dataset:
    """Join + reduce of one layer on Ray Data: what `Update` maps over.

    ``rows`` is a folder of neighbourhood parts of ``num_dst`` destinations, items
    (whose own ``h`` is in ``sources``) or contexts; ``sources`` holds the messages
    in ``column``, ``width`` wide (`message_width`).
    """
    pooled = _pooled(
        ray.data.read_parquet(str(rows)), sources, column, kind, width, options
    )
    dst = sources.select_columns(["node", "h"]) if items else _nodes(num_dst, options)
    return _with_pooled(dst, pooled, options)


def _embed_shuffle(
    model: PinSageModel,
    store: FeatureStore,
    item_rows: Path,
    context_rows: Path | None,
    *,
    num_contexts: int,
    options: RayOptions,
    done: Callable[[str], None],
) -> tuple[Dataset, Dataset | None]:
    """`embed_ray` with Ray Data's hash joins: materialised {node, z} datasets."""
    model_box = [ray.put(model)]
    num_layers, with_contexts = len(model.convs), context_rows is not None
    layer = partial(_shuffle_layer, kind=model.aggregator, options=options)
    after, _ = message_steps(model, 0, with_contexts)
    steps = [(Project, ([ray.put(store)],)), *after]
    h = _model_map(_nodes(store.num_items, options), model_box, steps, options)
    done("input projection")
    for k in range(num_layers):
        below_top = h  # {node, h^k, m, ...}; after the loop, h^(K-1)'s
        width = message_width(model, k)
        dst = layer(item_rows, h, "m", items=True, num_dst=store.num_items, width=width)
        after, _ = message_steps(model, k + 1, with_contexts)
        steps = [(Update, (k, k == num_layers - 1)), *after]
        h = _model_map(dst, model_box, steps, options)
        done(f"item layer {k + 1} of {num_layers}")
    if context_rows is None:
        return h, None
    width = message_width(model, None)
    dst = layer(
        context_rows,
        below_top,
        "m_context",
        items=False,
        num_dst=num_contexts,
        width=width,
    )
    z_contexts = _model_map(dst, model_box, [(Update, (None, True))], options)
    done("context layer")
    return h, z_contexts


def _dataset_batches(ds: Dataset) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream a {node, z} dataset to the driver one block at a time."""
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        z = batch["z"].combine_chunks()
        yield batch["node"].to_numpy(), z.flatten().to_numpy().reshape(len(z), -1)


def embed_ray(
    model: PinSageModel,
    store: FeatureStore,
    item_rows: Path,
    context_rows: Path | None,
    *,
    num_contexts: int,
    options: RayOptions,
) -> tuple[Batches, Batches | None]:
    """Final embeddings of every item (and every context with ``context_rows``).

    ``item_rows`` / ``context_rows`` are folders of neighbourhood Parquet parts
    (`write_neighborhoods`). Ray must be initialised, and the batches must be read
    before it stops. Returns (node indices (B,), vectors (B, out_dim)) batches: of
    every item, and of every context.
    """
    check_supported(model)
    model.eval()
    broadcast = _broadcasts(model, store, options)
    log.info("ray engine: %s join", "broadcast" if broadcast else "shuffle")
    clock = _LayerClock(1 + len(model.convs) + (context_rows is not None))
    inputs = (model, store, item_rows, context_rows)
    with clock.bar:
        if broadcast:
            z_items, z_contexts = embed_broadcast(
                *inputs,
                num_contexts=num_contexts,
                concurrency=options.concurrency,
                batch_size=options.batch_size,
                done=clock.done,
            )
            contexts = None if z_contexts is None else matrix_batches(z_contexts)
            return matrix_batches(z_items), contexts
        ds_items, ds_contexts = _embed_shuffle(
            *inputs, num_contexts=num_contexts, options=options, done=clock.done
        )
    contexts = None if ds_contexts is None else _dataset_batches(ds_contexts)
    return _dataset_batches(ds_items), contexts
