"""Data contract, synthetic data and importers (see DESIGN.md "Files")."""

from pinsage.data.contract import (
    InteractionBatch,
    InteractionColumns,
    iter_interactions,
    open_parquet,
    read_items,
)

__all__ = [
    "InteractionBatch",
    "InteractionColumns",
    "iter_interactions",
    "open_parquet",
    "read_items",
]
