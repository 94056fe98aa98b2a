"""Write a data folder: interactions.parquet, test.parquet, optional items.parquet.

Used by `data synth` and every importer, so all of them produce the same contract and
the same atomic, skip-if-complete behaviour.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from pinsage.atomic import atomic_dir, publish
from pinsage.manifests import DataManifest

__all__ = ["ROW_GROUP_ROWS", "is_current", "write_data_folder"]

log = logging.getLogger(__name__)

# Row groups of 1M rows: readers stream them one at a time with bounded memory.
ROW_GROUP_ROWS = 1 << 20


def is_current(out: Path, params: dict) -> bool:
    """Whether ``out`` is a complete data folder written with ``params``."""
    return DataManifest.read_current(out, {"params": params}) is not None


def write_data_folder(
    out: Path,
    tables: dict[str, pa.Table],
    params: dict,
    *,
    overwrite: bool = True,
) -> DataManifest:
    """Write ``tables`` as ``{name}.parquet`` plus a manifest, atomically.

    ``tables`` holds at least ``interactions`` and ``test`` (a validation split:
    ``fit`` and ``validation``); ``items`` when there are
    item features, and any extra table (e.g. planted ``item_clusters``).
    """
    manifest = DataManifest(
        params=params,
        tables={
            name: {"rows": t.num_rows, "columns": t.column_names}
            for name, t in tables.items()
        },
    )
    with atomic_dir(Path(out), overwrite=overwrite) as tmp:
        for name, table in tables.items():
            pq.write_table(
                table, tmp / f"{name}.parquet", row_group_size=ROW_GROUP_ROWS
            )
        publish(tmp, manifest.to_json())
    log.info(
        "wrote %s: %s",
        out,
        ", ".join(f"{n} {t.num_rows:,} rows" for n, t in tables.items()),
    )
    return manifest
