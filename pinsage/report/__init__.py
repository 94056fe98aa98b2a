"""The run report: one self-contained HTML page about a run root.

Curves from ``run/metrics.jsonl``, final metrics beside published figures, stage
timings from the root manifest, the index summary and the nearest neighbours of a few
sample items with their features (`pinsage report --root DIR`).
"""

from pinsage.report.collect import RunData, collect_run
from pinsage.report.published import PublishedTable, published_for
from pinsage.report.write import write_report

__all__ = ["PublishedTable", "RunData", "collect_run", "published_for", "write_report"]
