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

from pinsage.atomic import atomic_dir, write_json
from pinsage.data.contract import (
    InteractionColumns,
    iter_interactions,
    open_parquet,
    read_items,
)
from pinsage.data.folder import ROW_GROUP_ROWS
from pinsage.data.importers._common import file_sha256, is_up_to_date

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
    names = open_parquet(src, "interactions").schema_arrow.names
    rename = {
        getattr(cols, f): getattr(_CONTRACT, f)
        for f in ("user", "item", "weight", "timestamp")
        if getattr(cols, f) in names
    }
    pf = open_parquet(src, "interactions")
    writer = None
    for batch in pf.iter_batches(batch_size=ROW_GROUP_ROWS, columns=list(rename)):
        table = pa.Table.from_batches([batch]).rename_columns(list(rename.values()))
        if writer is None:
            writer = pq.ParquetWriter(dst, table.schema)
        writer.write_table(table, row_group_size=ROW_GROUP_ROWS)
    writer.close()
    return rows, item_kind


def import_parquet(
    src: Path,
    out: Path,
    *,
    columns: InteractionColumns = _CONTRACT,
    overwrite: bool = False,
) -> Path:
    """Validate and copy ``src/{interactions,test,items}.parquet`` into ``out``."""
    src, out = Path(src), Path(out)
    names = [
        n for n in ("interactions", "test", "items") if (src / f"{n}.parquet").exists()
    ]
    if "interactions" not in names:
        open_parquet(src / "interactions.parquet", "interactions")  # raises DataError
    params = {
        "source": "parquet",
        "columns": vars(columns),
        "files": {n: file_sha256(src / f"{n}.parquet") for n in names},
    }
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
        if "items" in names:
            items = read_items(src / "items.parquet", columns.item, item_kind)
            pq.write_table(items, tmp / "items.parquet", row_group_size=ROW_GROUP_ROWS)
            tables["items"] = {"rows": items.num_rows}
        write_json(tmp / "manifest.json", {"params": params, "tables": tables})
        (tmp / "_SUCCESS").touch()
    log.info("imported %s into %s: %s", src, out, tables)
    return out
