"""Import a folder of Parquet files with foreign column names into the data contract.

SRC holds ``interactions.parquet`` and optionally ``test.parquet`` and
``items.parquet``. Each interaction file is validated in full (streamed by row groups)
and then copied batch by batch with its columns renamed to ``user``, ``item``,
``weight``, ``timestamp``; the catalogue is validated (one row per item) and copied.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.atomic import atomic_dir, file_sha256, publish
from pinsage.data.cold import with_cold_items
from pinsage.data.contract import (
    InteractionColumns,
    iter_interactions,
    open_parquet,
    read_items,
)
from pinsage.data.folder import ROW_GROUP_ROWS
from pinsage.data.importers._common import is_up_to_date
from pinsage.data.split import split_table
from pinsage.errors import ConfigError
from pinsage.manifests import DataManifest

__all__ = ["import_parquet"]

log = logging.getLogger(__name__)

_CONTRACT = InteractionColumns()


def _copy_interactions(
    src: Path, dst: Path, cols: InteractionColumns
) -> tuple[int, str]:
    """Validate ``src`` fully, then stream it to ``dst`` with contract column names."""
    rows = 0
    item_kind = "int"
    for batch in iter_interactions(src, cols):
        rows += len(batch.user)
        item_kind = "string" if pa.types.is_large_string(batch.item.type) else "int"
    pf = open_parquet(src, "interactions")
    rename = cols.to_contract(pf.schema_arrow.names)
    writer = None
    for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS, columns=list(rename)):
        table = pa.Table.from_batches([batch]).rename_columns(list(rename.values()))
        if writer is None:
            writer = pq.ParquetWriter(dst, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    writer.close()
    return rows, item_kind


def _split_test(folder: Path, fraction: float, seed: int) -> dict:
    """Hold ``fraction`` of each user's copied interactions out as test.parquet."""
    table = pq.read_table(folder / "interactions.parquet")
    kept, held = split_table(table, fraction, seed, _CONTRACT)
    rows = {}
    for name, part in (("interactions", kept), ("test", held)):
        pq.write_table(part, folder / f"{name}.parquet", row_group_size=ROW_GROUP_ROWS)
        rows[name] = {"rows": part.num_rows}
    return rows


def _make_cold(folder: Path, names: list[str], fraction: float, seed: int) -> int:
    """Make ``fraction`` of the copied items cold; the training rows left."""
    tables = {n: pq.read_table(folder / f"{n}.parquet") for n in names}
    tables, _ = with_cold_items(tables, fraction, seed, str(folder))
    pq.write_table(
        tables["interactions"],
        folder / "interactions.parquet",
        row_group_size=ROW_GROUP_ROWS,
    )
    return tables["interactions"].num_rows


def import_parquet(
    src: Path,
    out: Path,
    *,
    columns: InteractionColumns = _CONTRACT,
    test_fraction: float | None = None,
    cold_items: float = 0.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Validate and copy ``src/{interactions,test,items}.parquet`` into ``out``.

    ``test_fraction`` (with ``seed``): hold out that share of each user's
    interactions as ``test.parquet`` (the latest where there are timestamps), for a
    source without a test file. ``cold_items``: a share of the items made cold
    (`pinsage.data.cold`), which needs a test split and ``items``.
    """
    src, out = Path(src), Path(out)
    names = [
        n for n in ("interactions", "test", "items") if (src / f"{n}.parquet").exists()
    ]
    if "interactions" not in names:
        open_parquet(src / "interactions.parquet", "interactions")  # raises DataError
    if test_fraction and "test" in names:
        raise ConfigError(
            f"{src} already holds test.parquet; leave --test-fraction out to keep "
            "that split, or remove the file to hold out a share instead."
        )
    params = {
        "source": "parquet",
        "columns": vars(columns),
        "files": {n: file_sha256(src / f"{n}.parquet") for n in names},
    } | ({"cold_items": cold_items, "seed": seed} if cold_items else {})
    if test_fraction:
        params |= {"test_fraction": test_fraction, "seed": seed}
    if is_up_to_date(out, src, params, overwrite=overwrite):
        log.info("%s already holds this import; nothing to do", out)
        return out
    tables = {}
    with atomic_dir(out, overwrite=True) as tmp:
        rows, item_kind = _copy_interactions(
            src / "interactions.parquet", tmp / "interactions.parquet", columns
        )
        tables["interactions"] = {"rows": rows}
        if "test" in names:
            rows, _ = _copy_interactions(
                src / "test.parquet", tmp / "test.parquet", columns
            )
            tables["test"] = {"rows": rows}
        if test_fraction:
            tables |= _split_test(tmp, test_fraction, seed)
            names.append("test")
        if "items" in names:
            items = read_items(src / "items.parquet", columns.catalogue_id, item_kind)
            pq.write_table(items, tmp / "items.parquet", row_group_size=ROW_GROUP_ROWS)
            tables["items"] = {"rows": items.num_rows}
        if cold_items:
            tables["interactions"] = {"rows": _make_cold(tmp, names, cold_items, seed)}
        publish(tmp, DataManifest(params=params, tables=tables).to_json())
    log.info("imported %s into %s: %s", src, out, tables)
    return out
