"""The Ray engine's broadcast path: one pool of model actors for the whole job.

Every stage of every layer runs on the same ``concurrency`` actors, each of which
fetches the model once, when it starts. Layer k is one round of calls, one per
neighbourhood part (the rows of a range of destinations, as they were written):

    driver:  put h^k and m^k = Message_k(h^k), one row per node, in the object store
    actor:   gather the part's sources' rows of m^k, pool them per destination,
             update (h^(k+1)), then the next layer's messages of those destinations
    driver:  place the returned rows in h^(k+1) and m^(k+1)

so the join is a map-side join (nothing is shuffled: a layer moves N x width floats,
not E x width) and the pass that finishes layer k also starts layer k+1. The stages
themselves are `stages`' batch functions, the ones Ray Data runs on the shuffle path.
Ray Data's actor pools cost a start, a model fetch and a scheduling loop per stage
(about 15 s a job); plain actors cost them once.

Actors restart when they die and their calls are retried (``max_restarts``,
``max_task_retries``: -1), so a killed worker or a lost node delays the job but does
not change its output; what an actor returns is fetched by the driver as it arrives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow as pa
import ray
from ray.util import ActorPool

from pinsage.features import FeatureStore
from pinsage.infer.neighborhoods import part_ranges
from pinsage.infer.stages import (
    Chain,
    Gather,
    Project,
    Update,
    message_steps,
    to_matrix,
    unbox,
)
from pinsage.nn.model import PinSageModel

__all__ = ["ModelActor", "embed_broadcast"]


@ray.remote(num_cpus=1, max_restarts=-1, max_task_retries=-1)
class ModelActor:
    """Holds the model for the job; runs any chain of stages on a batch."""

    def __init__(self, model_box: list) -> None:
        self.model = unbox(model_box).eval()  # fetched once per actor

    def run(self, steps: list[tuple[type, tuple]], batch: pa.Table) -> pa.Table:
        """``steps`` applied in turn to ``batch`` (see `Chain`)."""
        return Chain([self.model], steps)(batch)


def _collect(
    tables: Iterable[pa.Table], widths: dict[str, int], count: int
) -> dict[str, np.ndarray]:
    """Columns of {node, ...} tables as (count, width) matrices, row = node."""
    out = {column: np.zeros((count, w), np.float32) for column, w in widths.items()}
    for table in tables:
        node = table["node"].to_numpy()
        for column, matrix in out.items():
            matrix[node] = to_matrix(table[column], matrix.shape[1])
    return out


def _range_batches(count: int, rows: int, actors: int) -> list[pa.Table]:
    """{node} tables of consecutive nodes covering ``0..count-1``.

    At most ``rows`` nodes a table, and at least ``actors`` tables when there are
    that many nodes: a small graph still keeps every actor (every node) busy.
    """
    rows = max(1, min(rows, -(-count // actors)))
    return [
        pa.table({"node": np.arange(lo, min(lo + rows, count), dtype=np.int64)})
        for lo in range(0, count, rows)
    ]


def _part_batches(folder: Path, count: int) -> list[pa.Table]:
    """One {part, start, stop} table per neighbourhood part (`Gather`'s input)."""
    return [
        pa.table({"part": [path], "start": [start], "stop": [stop]})
        for path, start, stop in part_ranges(folder, count)
    ]


def _run_round(
    pool: ActorPool,
    steps: list[tuple[type, tuple]],
    batches: list[pa.Table],
    widths: dict[str, int],
    count: int,
) -> dict[str, np.ndarray]:
    """One set of stages over ``batches``, spread over the pool's actors; collected."""
    results = pool.map_unordered(
        lambda actor, batch: actor.run.remote(steps, batch), batches
    )
    return _collect(results, widths, count)


def embed_broadcast(
    model: PinSageModel,
    store: FeatureStore,
    item_rows: Path,
    context_rows: Path | None,
    *,
    num_contexts: int,
    concurrency: int,
    batch_size: int,
    done: Callable[[str], None],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Final embeddings of every item (and every context with ``context_rows``).

    ``item_rows`` / ``context_rows`` are folders of neighbourhood parts; ``done(what)``
    is called as each pass ends. Ray must be initialised.
    Shapes: -> (num_items, out_dim), (num_contexts, out_dim) or None.
    """
    num_items, num_layers = store.num_items, len(model.convs)
    with_contexts = context_rows is not None
    model_box = [ray.put(model)]  # one copy in the object store for every actor
    actors = [ModelActor.remote(model_box) for _ in range(concurrency)]
    run = partial(_run_round, ActorPool(actors))
    after, columns = message_steps(model, 0, with_contexts)
    steps = [(Project, ([ray.put(store)],)), *after]
    batches = _range_batches(num_items, batch_size, concurrency)
    h = run(steps, batches, {"h": model.dim, **columns}, num_items)
    done("input projection")
    parts = _part_batches(item_rows, num_items)
    for k in range(num_layers):
        below_top = h  # h^k and its messages; after the loop, h^(K-1)'s
        top = k == num_layers - 1
        gather = (Gather, (model.aggregator, [ray.put(h["m"])], [ray.put(h["h"])]))
        after, columns = message_steps(model, k + 1, with_contexts)
        steps = [gather, (Update, (k, top)), *after]
        widths = {"z": model.out_dim} if top else {"h": model.dim, **columns}
        h = run(steps, parts, widths, num_items)
        done(f"item layer {k + 1} of {num_layers}")
    if context_rows is None:
        return h["z"], None
    gather = (Gather, (model.aggregator, [ray.put(below_top["m_context"])]))
    steps = [gather, (Update, (None, True))]
    batches = _part_batches(context_rows, num_contexts)
    z_contexts = run(steps, batches, {"z": model.out_dim}, num_contexts)["z"]
    done("context layer")
    return h["z"], z_contexts
