"""The Ray engine: DESIGN.md's map / join / reduce per layer on Ray Data.

Layer k, over all items at once:

    map:    m = Message_k(h)                        actor pool, batches of items
    join:   (dst, src, alpha) ⋈ m on src
    reduce: group by dst: n_u = Σ alpha m_src
    update: h' = Update_k(h ⟕ n on node)            no neighbours -> n = 0

The join runs one of two ways (``RayOptions.join``), as a SQL engine would choose:

- ``broadcast`` (a map-side join): the messages, one row per node, go to the object
  store as one matrix; each task takes whole parts of the table (all rows of a range
  of destinations, as they were written), gathers its sources' rows and pools them
  (`Gather`). Nothing is shuffled: a layer moves N x width floats, not E x width.
- ``shuffle``: Ray Data's hash join of the table with the messages on ``src``, a hash
  partition on ``dst`` and one vectorised pool per partition, then a left join with
  every destination. It moves E = N x T message copies through the object store, and
  it is the path for catalogues whose messages do not fit in one node's memory.

``auto`` broadcasts when the broadcast matrices fit in ``broadcast_limit_mb``.

Layer k's update and layer k+1's map run in one pass (one `Chain` per batch), and that
pass is materialised before anything reads it, so every node's layer-k vector is
computed once. The last item layer applies the head. The context layer mirrors
`embed_all`: ``context_conv`` messages of the last-but-one item vectors (computed in
the same pass as those vectors), joined with the context table, updated with the
model's context input as destination, then the head. The model goes to the object
store once and each actor fetches it once (see `stages`). The same code runs on a local
Ray started in-process or on a cluster (``RayOptions.address``).
"""

from __future__ import annotations

import logging
import math
import time
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
from pinsage.infer.neighborhoods import part_ranges
from pinsage.infer.stages import (
    Chain,
    Gather,
    Message,
    Project,
    Update,
    message_width,
    pool,
    to_matrix,
)
from pinsage.nn.conv import PinSageConv
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
        concurrency: model actors per map stage.
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
    ds: Dataset,
    model_box: list,
    steps: list,
    options: RayOptions,
    batch_size: int | None = None,
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
        batch_size=batch_size or options.batch_size,
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


def _matrices(ds: Dataset, widths: dict[str, int], count: int) -> dict[str, np.ndarray]:
    """Columns of a {node, ...} dataset as (count, width) matrices, row = node."""
    out = {column: np.zeros((count, w), np.float32) for column, w in widths.items()}
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        node = batch["node"].to_numpy()
        for column, matrix in out.items():
            matrix[node] = to_matrix(batch[column], matrix.shape[1])
    return out


def _parts(folder: Path, num_nodes: int) -> Dataset:
    """{part, start, stop}: one row (and block) per neighbourhood part; stored."""
    rows = [
        {"part": path, "start": start, "stop": stop}
        for path, start, stop in part_ranges(folder, num_nodes)
    ]
    return ray.data.from_items(rows, override_num_blocks=len(rows)).materialize()


def _reduced(
    rows: Path,
    num_dst: int,
    sources: Dataset,
    column: str,
    conv: PinSageConv,
    *,
    items: bool,
    width: int,
    kind: str,
    num_sources: int,
    broadcast: bool,
    options: RayOptions,
) -> tuple[Dataset, list, int]:
    """Join + reduce of one layer: what `Update` maps over, and how.

    ``rows`` is a folder of neighbourhood parts of ``num_dst`` destinations, items
    (whose own ``h`` is in ``sources``) or contexts; ``sources`` holds the messages
    in ``column``, ``width`` wide (`message_width`). Returns the dataset, the stages
    to run before `Update` on each batch of it, and the batch size.
    """
    if broadcast:
        widths = {column: width, **({"h": conv.dst_dim} if items else {})}
        mats = _matrices(sources, widths, num_sources)
        inputs = [ray.put(mats["h"])] if items else None
        gather = (Gather, (kind, [ray.put(mats[column])], inputs))
        return _parts(rows, num_dst), [gather], 1  # one part (CHUNK nodes) a call
    pooled = _pooled(
        ray.data.read_parquet(str(rows)),
        sources,
        column,
        kind,
        width,
        options,
    )
    dst = sources.select_columns(["node", "h"]) if items else _nodes(num_dst, options)
    return _with_pooled(dst, pooled, options), [], options.batch_size


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


def _message_steps(k: int, num_layers: int, contexts: bool) -> list:
    """The stages that follow h^k: its layer-k messages (h^k feeds convs[k]).

    From h^(K-1) also the context layer's messages, when contexts are embedded.
    """
    steps = [(Message, (k,))] if k < num_layers else []
    if contexts and k == num_layers - 1:
        steps.append((Message, (None, "m_context")))
    return steps


class _LayerClock:
    """The layers' progress bar, and a log line with each layer's time."""

    def __init__(self, layers: int) -> None:
        self.bar = tqdm(total=layers, desc="ray layers", unit="layer", disable=None)
        self.start = time.perf_counter()

    def done(self, what: str) -> None:
        log.info("ray engine: %s took %.1fs", what, time.perf_counter() - self.start)
        self.start = time.perf_counter()
        self.bar.update()


def embed_ray(
    model: PinSageModel,
    store: FeatureStore,
    item_rows: Path,
    context_rows: Path | None,
    *,
    num_contexts: int,
    options: RayOptions,
) -> tuple[Dataset, Dataset | None]:
    """Final embeddings of every item (and every context with ``context_rows``).

    ``item_rows`` / ``context_rows`` are folders of neighbourhood Parquet parts
    (`write_neighborhoods`). Ray must be initialised.
    Returns materialised datasets {node, z (out_dim)}: all items, and all contexts.
    """
    check_supported(model)
    model.eval()
    model_box = [ray.put(model)]
    num_layers, with_contexts = len(model.convs), context_rows is not None
    broadcast = _broadcasts(model, store, options)
    log.info("ray engine: %s join", "broadcast" if broadcast else "shuffle")
    reduced = partial(
        _reduced,
        kind=model.aggregator,
        num_sources=store.num_items,
        broadcast=broadcast,
        options=options,
    )
    clock = _LayerClock(1 + num_layers + with_contexts)
    with clock.bar:
        steps = [(Project, ([ray.put(store)],))]
        steps += _message_steps(0, num_layers, with_contexts)
        h = _model_map(_nodes(store.num_items, options), model_box, steps, options)
        clock.done("input projection")
        for k in range(num_layers):
            below_top = h  # {node, h^k, m, ...}; after the loop, h^(K-1)'s
            width = message_width(model, k)
            dst, lead, batch = reduced(
                item_rows,
                store.num_items,
                h,
                "m",
                model.convs[k],
                items=True,
                width=width,
            )
            steps = [*lead, (Update, (k, k == num_layers - 1))]
            steps += _message_steps(k + 1, num_layers, with_contexts)
            h = _model_map(dst, model_box, steps, options, batch)
            clock.done(f"item layer {k + 1} of {num_layers}")
        if not with_contexts:
            return h, None
        width = message_width(model, None)
        dst, lead, batch = reduced(
            context_rows,
            num_contexts,
            below_top,
            "m_context",
            model.context_conv,
            items=False,
            width=width,
        )
        steps = [*lead, (Update, (None, True))]
        z_contexts = _model_map(dst, model_box, steps, options, batch)
        clock.done("context layer")
    return h, z_contexts
