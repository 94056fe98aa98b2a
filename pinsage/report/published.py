"""Published figures a run is compared with, by dataset.

The report shows them beside a run's final metrics where the run's dataset has them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GOWALLA", "PublishedTable", "published_for"]


@dataclass(frozen=True)
class PublishedTable:
    """Published results on one dataset split: ``rows[model][i]`` is ``metrics[i]``.

    ``None`` marks a figure the source does not give.
    """

    dataset: str
    source: str
    metrics: tuple[str, ...]
    rows: dict[str, tuple[float | None, ...]]


GOWALLA = PublishedTable(
    dataset="Gowalla (LightGCN split)",
    source="each model's paper on this split (PinSage as reported by NGCF; embedding "
    "size 64 throughout)",
    metrics=("recall@20", "ndcg@20"),
    rows={
        "PinSage (as reported by NGCF)": (0.1380, 0.1196),
        "NGCF": (0.1570, 0.1327),
        "LightGCN": (0.1830, 0.1554),
        "GF-CF": (0.1849, 0.1518),
        "UltraGCN": (0.1862, None),
        "SimpleX": (0.1872, 0.1557),
        "MF + BSL": (0.1882, None),
        "BSPM": (0.1920, None),
        "ChebyCF (SIGIR 2025)": (0.1941, 0.1616),
    },
)

# Keyed by a word of the dataset's name or path (the root manifest's "dataset").
_BY_NAME = {"gowalla": GOWALLA}


def published_for(dataset: str | None) -> PublishedTable | None:
    """The published table of ``dataset`` (a name or a path), or None if none."""
    name = (dataset or "").lower()
    return next((table for key, table in _BY_NAME.items() if key in name), None)
