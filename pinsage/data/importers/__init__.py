"""Importers: public recommendation data sets into a data folder (DESIGN.md "Files")."""

from pathlib import Path

from pinsage.data.contract import InteractionColumns
from pinsage.data.importers.lightgcn import import_lightgcn
from pinsage.data.importers.movielens import import_movielens
from pinsage.data.importers.parquet import import_parquet
from pinsage.errors import ConfigError

__all__ = [
    "FORMATS",
    "import_folder",
    "import_lightgcn",
    "import_movielens",
    "import_parquet",
]

FORMATS = ("lightgcn", "movielens", "parquet")


def import_folder(
    fmt: str,
    src: Path,
    out: Path,
    *,
    test_fraction: float = 0.2,
    min_rating: float | None = None,
    columns: InteractionColumns | None = None,
    overwrite: bool = False,
) -> Path:
    """Import ``src`` in format ``fmt`` (one of `FORMATS`) into the data folder ``out``.

    ``test_fraction`` and ``min_rating`` (only ratings at or above it are positives)
    apply to MovieLens (per-user temporal split), ``columns`` to Parquet sources with
    foreign column names; LightGCN keeps its own split.
    """
    if min_rating is not None and fmt != "movielens":
        raise ConfigError(
            f"min_rating applies to MovieLens ratings only, not to format {fmt!r}; "
            "leave it unset."
        )
    if fmt == "lightgcn":
        return import_lightgcn(src, out, overwrite=overwrite)
    if fmt == "movielens":
        return import_movielens(
            src,
            out,
            test_fraction=test_fraction,
            min_rating=min_rating,
            overwrite=overwrite,
        )
    if fmt == "parquet":
        return import_parquet(
            src, out, columns=columns or InteractionColumns(), overwrite=overwrite
        )
    raise ValueError(f"unknown import format {fmt!r}; expected one of {FORMATS}")
