"""Importers: public recommendation data sets into a data folder (DESIGN.md "Files")."""

from pathlib import Path

from pinsage.config import IMPORT_FORMATS
from pinsage.data.contract import InteractionColumns
from pinsage.data.importers.lightgcn import import_lightgcn
from pinsage.data.importers.movielens import import_movielens
from pinsage.data.importers.parquet import import_parquet
from pinsage.errors import ConfigError, DataError

__all__ = [
    "FORMATS",
    "import_folder",
    "import_lightgcn",
    "import_movielens",
    "import_parquet",
]

FORMATS = IMPORT_FORMATS


MOVIELENS_TEST_FRACTION = 0.2  # MovieLens's default temporal test share


def _check_options(
    fmt: str,
    src: Path,
    test_fraction: float | None,
    min_rating: float | None,
    rating_weights: bool,
    cold_items: float,
) -> None:
    """`ConfigError` / `DataError` for options the format cannot take."""
    if Path(src).is_file():
        raise DataError(
            f"{src} is a file; `data import --format {fmt}` reads a folder (for "
            "parquet: one holding interactions.parquet, and optionally test.parquet "
            "and items.parquet): pass the folder."
        )
    if test_fraction is not None and not 0.0 <= test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in [0, 1), got {test_fraction}")
    if test_fraction and fmt == "lightgcn":
        raise ConfigError(
            "the lightgcn format brings its own test split (test.txt); leave "
            "--test-fraction out."
        )
    if not 0.0 <= cold_items < 1.0:
        raise ConfigError(f"cold_items must be in [0, 1), got {cold_items}")
    if cold_items and fmt == "lightgcn":
        raise ConfigError(
            "cold items need item features, and the lightgcn format has none: a "
            "cold item would have no input at all; leave --cold-items out."
        )
    if not rating_weights and fmt != "movielens":
        raise ConfigError(
            f"rating weights apply to MovieLens ratings only, not to format {fmt!r}."
        )
    if min_rating is not None and fmt != "movielens":
        raise ConfigError(
            f"min_rating applies to MovieLens ratings only, not to format {fmt!r}; "
            "leave it unset."
        )


def import_folder(
    fmt: str,
    src: Path,
    out: Path,
    *,
    test_fraction: float | None = None,
    min_rating: float | None = None,
    rating_weights: bool = True,
    columns: InteractionColumns | None = None,
    cold_items: float = 0.0,
    seed: int = 0,
    overwrite: bool = False,
) -> Path:
    """Import ``src`` in format ``fmt`` (one of `FORMATS`) into the data folder ``out``.

    ``test_fraction``: the share of each user's interactions held out as the test
    split (their latest where there are timestamps, else drawn with ``seed``):
    MovieLens (default 0.2) and Parquet sources without a test file (default: none);
    LightGCN keeps its own split. ``min_rating`` (only ratings at or above it are
    positives) and ``rating_weights`` (the rating as the edge weight, else 1) apply
    to MovieLens, ``columns`` to Parquet sources with foreign column names.
    ``cold_items`` makes that share of the items cold (`pinsage.data.cold`: no
    training rows, features and test rows kept; the latest to appear where there are
    timestamps, else drawn with ``seed``), for formats with item features.
    """
    _check_options(fmt, src, test_fraction, min_rating, rating_weights, cold_items)
    if fmt == "lightgcn":
        return import_lightgcn(src, out, overwrite=overwrite)
    if fmt == "movielens":
        return import_movielens(
            src,
            out,
            test_fraction=(
                MOVIELENS_TEST_FRACTION if test_fraction is None else test_fraction
            ),
            min_rating=min_rating,
            rating_weights=rating_weights,
            cold_items=cold_items,
            seed=seed,
            overwrite=overwrite,
        )
    if fmt == "parquet":
        return import_parquet(
            src,
            out,
            columns=columns or InteractionColumns(),
            test_fraction=test_fraction,
            cold_items=cold_items,
            seed=seed,
            overwrite=overwrite,
        )
    raise ValueError(f"unknown import format {fmt!r}; expected one of {FORMATS}")
