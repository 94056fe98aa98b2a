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
    source="LightGCN (He et al., SIGIR 2020), Table 3",
    metrics=("recall@20", "ndcg@20"),
    rows={
        "LightGCN": (0.1830, 0.1554),
        "NGCF": (0.1570, 0.1327),
        "PinSage (as reported by NGCF)": (0.1380, 0.1196),
        "best published on this split (about)": (0.192, None),
    },
)

# Keyed by a word of the dataset's name or path (the root manifest's "dataset").
_BY_NAME = {"gowalla": GOWALLA}


def published_for(dataset: str | None) -> PublishedTable | None:
    """The published table of ``dataset`` (a name or a path), or None if none."""
    name = (dataset or "").lower()
    return next((table for key, table in _BY_NAME.items() if key in name), None)
