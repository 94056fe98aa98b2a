"""Neighbourhood tables as Parquet rows ``(dst, src, alpha)``, written by Ray tasks.

Bulk inference fixes every node's importance neighbourhood once (DESIGN.md "Bulk
inference"). Here the table is cut into ranges of whole `CHUNK`-node blocks; one Ray
task samples one range with `neighborhood_table` (seeded per chunk, so a node's rows
depend only on the graph, the node and the seed) and writes one part file named by the
range's first node. Any range size and any number of workers give the same rows, and
reading the folder back (parts in name order) gives them sorted by ``dst``.

The in-process path is `neighborhood_table` itself (the local engine takes its
`Neighbors`); `table_rows` turns that into exactly these rows. Tasks get the graph's
path, not its arrays: each opens the memory-mapped CSR itself, so on a cluster the
graph directory must be readable at the same path on every node.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch
from tqdm.auto import tqdm

from pinsage.atomic import temp_sibling
from pinsage.config import SamplerConfig
from pinsage.graph.store import load_graph
from pinsage.sampler.table import CHUNK, neighborhood_table
from pinsage.sampler.walks import Neighbors

__all__ = [
    "ROW_SCHEMA",
    "node_ranges",
    "part_ranges",
    "read_neighborhoods",
    "table_rows",
    "write_neighborhoods",
    "write_range",
]

log = logging.getLogger(__name__)

ROW_SCHEMA = pa.schema(
    [("dst", pa.int64()), ("src", pa.int64()), ("alpha", pa.float32())]
)
# A task that dies (worker killed, node lost) is re-run; it rewrites the same part.
TASK_RETRIES = 3


def table_rows(table: Neighbors, start: int = 0) -> pa.Table:
    """The filled slots of ``table`` (row r is node ``start + r``) as rows.

    Rows are ordered by ``dst``, then by slot (most visited first), as `table_block`
    orders its edges. Shapes: table (N, T) -> E rows of `ROW_SCHEMA`.
    """
    filled = torch.nonzero(table.ids.flatten() >= 0).squeeze(1)  # (E,) flat slots
    dst = filled // table.ids.shape[1] + start
    src = table.ids.flatten().index_select(0, filled)
    alpha = table.weights.flatten().index_select(0, filled)
    return pa.table(
        [pa.array(dst.numpy()), pa.array(src.numpy()), pa.array(alpha.numpy())],
        schema=ROW_SCHEMA,
    )


def node_ranges(num_nodes: int, chunks_per_part: int) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``chunks_per_part`` whole chunks, covering all."""
    step = CHUNK * chunks_per_part
    return [(lo, min(lo + step, num_nodes)) for lo in range(0, num_nodes, step)]


def _part_path(folder: Path, start: int) -> Path:
    """The part file of the range starting at node ``start``."""
    return Path(folder) / f"part-{start:012d}.parquet"


def write_range(
    graph_dir: str,
    cfg: SamplerConfig,
    contexts: bool,
    start: int,
    stop: int,
    folder: str,
) -> int:
    """Sample nodes ``start..stop-1`` and write their rows as one part; return rows.

    The part appears whole or not at all (temporary file, then rename), so a retried
    task simply writes it again.
    """
    graph = load_graph(Path(graph_dir))  # memory-mapped: opening costs no copy
    table = neighborhood_table(
        graph.csr, cfg, contexts=contexts, start=start, stop=stop
    )
    rows = table_rows(table, start)
    path = _part_path(Path(folder), start)
    tmp = temp_sibling(path)
    pq.write_table(rows, tmp)
    os.replace(tmp, path)
    return rows.num_rows


def write_neighborhoods(
    graph_dir: Path,
    cfg: SamplerConfig,
    folder: Path,
    *,
    num_nodes: int,
    contexts: bool = False,
    chunks_per_part: int = 1,
    max_in_flight: int = 4,
) -> int:
    """Write the table of all items (or contexts) under ``folder``; return its rows.

    Runs one Ray task per range of ``chunks_per_part`` chunks, at most
    ``max_in_flight`` at a time (Ray must be initialised).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    task = ray.remote(write_range).options(max_retries=TASK_RETRIES, num_cpus=1)
    pending = list(node_ranges(num_nodes, chunks_per_part))[::-1]
    running: list[ray.ObjectRef] = []
    rows = 0
    what = "contexts" if contexts else "items"
    with tqdm(
        total=len(pending), desc=f"neighbourhoods ({what})", unit="part", disable=None
    ) as bar:
        while pending or running:
            while pending and len(running) < max_in_flight:
                lo, hi = pending.pop()
                running.append(
                    task.remote(str(graph_dir), cfg, contexts, lo, hi, str(folder))
                )
            done, running = ray.wait(running, num_returns=1)
            rows += sum(ray.get(done))
            bar.update(len(done))
    log.info("neighbourhoods of %d %s: %d rows in %s", num_nodes, what, rows, folder)
    return rows


def part_ranges(folder: Path, num_nodes: int) -> list[tuple[str, int, int]]:
    """``(path, start, stop)`` of every part under ``folder``, in node order.

    A part named by ``start`` holds the rows of nodes ``start..stop-1``, ``stop`` being
    the next part's start (the last part's: ``num_nodes``).
    """
    parts = sorted(Path(folder).glob("part-*.parquet"))
    starts = [int(p.stem.split("-")[1]) for p in parts]
    stops = [*starts[1:], num_nodes]
    return [(str(p), a, b) for p, a, b in zip(parts, starts, stops, strict=True)]


def read_neighborhoods(folder: Path) -> pa.Table:
    """All rows under ``folder``, parts in name order (hence by ``dst``)."""
    parts = sorted(Path(folder).glob("part-*.parquet"))
    if not parts:
        return ROW_SCHEMA.empty_table()
    return pa.concat_tables(pq.read_table(p, schema=ROW_SCHEMA) for p in parts)
