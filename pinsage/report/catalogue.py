"""Features and planted clusters of a few items, as short strings for a person.

Features come from the catalogue the graph was built from (``ROOT/data/items.parquet``,
else the ``items`` source the graph manifest records) or, when that file is gone, from
the graph's own stored feature columns. Planted clusters come from
``ROOT/data/item_clusters.parquet``, which only generated data has. Only the rows of
the asked items are read, so a catalogue of millions costs a filtered scan.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from pinsage.graph.store import Graph

__all__ = ["catalogue_path", "item_clusters", "item_features"]

ITEM_COLUMN = "item"
CLUSTERS_FILE = "item_clusters.parquet"
MAX_TEXT = 80  # characters of a text feature shown; titles fit, descriptions are cut
MAX_LIST = 4  # values of a list feature shown before "…"


def catalogue_path(root: Path, graph: Graph | None) -> Path | None:
    """The items.parquet of the run root, else the graph's recorded one, if present."""
    candidates = [Path(root) / "data" / "items.parquet"]
    if graph is not None:
        source = (graph.manifest.sources or {}).get("items", {}).get("path")
        if source:
            candidates.append(Path(source))
    return next((p for p in candidates if p.is_file()), None)


def _rows_of(path: Path, items: list) -> dict[object, dict]:
    """Rows of ``path`` whose item column is one of ``items``, keyed by item."""
    table = pq.read_table(path)
    if ITEM_COLUMN not in table.column_names:
        return {}
    wanted = pa.array(items).cast(table.schema.field(ITEM_COLUMN).type)
    table = table.filter(pc.is_in(table[ITEM_COLUMN], value_set=wanted))
    return {row.pop(ITEM_COLUMN): row for row in table.to_pylist()}


def _show(value: object) -> str:
    """One feature value as a short string."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list):
        if value and all(isinstance(v, int | float) for v in value):
            return f"[{len(value)} numbers]"  # a vector: its values say nothing here
        shown = ", ".join(map(str, value[:MAX_LIST]))
        return shown + (", …" if len(value) > MAX_LIST else "")
    text = str(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _graph_features(graph: Graph, items: list) -> dict[object, dict[str, str]]:
    """Features of ``items`` from the graph's stored columns (``graph/features``)."""
    rows = graph.item_index(items)
    shown: dict[object, dict[str, str]] = {item: {} for item in items}
    for spec in graph.features:
        column = graph.feature(spec.name)
        for item, row in zip(items, rows.tolist(), strict=True):
            if spec.kind == "vector":
                shown[item][spec.name] = f"[{spec.dim} numbers]"
                continue
            if spec.kind == "dense":
                value: object = float(column["values"][row])
            elif spec.kind == "categorical":
                lo, hi = column["offsets"][row], column["offsets"][row + 1]
                codes = np.asarray(column["codes"][lo:hi])
                value = column["vocab"].take(pa.array(codes)).to_pylist()
            else:
                value = column["text"][row].as_py()
            shown[item][spec.name] = _show(value)
    return shown


def item_features(
    root: Path, graph: Graph | None, items: list
) -> dict[object, dict[str, str]]:
    """Each item's features as {column: short string}; {} when no source has them."""
    path = catalogue_path(root, graph)
    if path is not None:
        rows = _rows_of(path, items)
        return {
            item: {name: _show(v) for name, v in rows.get(item, {}).items()}
            for item in items
        }
    if graph is not None and graph.features:
        return _graph_features(graph, items)
    return {}


def item_clusters(root: Path, items: list) -> dict[object, object]:
    """Each item's planted cluster (generated data only); {} when none is recorded."""
    path = Path(root) / "data" / CLUSTERS_FILE
    if not path.is_file():
        return {}
    return {item: row.get("cluster") for item, row in _rows_of(path, items).items()}
