"""`write_report`: read a run root, draw its figures, write one HTML page."""

from __future__ import annotations

import logging
from pathlib import Path

from pinsage.atomic import write_text
from pinsage.report.collect import collect_run
from pinsage.report.html import render_page
from pinsage.report.plots import training_plots

__all__ = ["REPORT_FILE", "write_report"]

log = logging.getLogger(__name__)

REPORT_FILE = "report.html"


def write_report(root: Path, out: Path | None = None) -> Path:
    """Write the report of the run root ``root`` to ``out`` and return its path.

    ``out`` defaults to ``root/report.html``. The page is self-contained (figures
    embedded as PNG data URIs) and shows whatever parts of the run exist, listing the
    missing ones. Raises `DataError` when ``root`` is not a run root.
    """
    data = collect_run(Path(root))
    out = Path(out) if out is not None else data.root / REPORT_FILE
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text(out, render_page(data, training_plots(data.train_rows)))
    log.info("report of %s written to %s (%d missing)", root, out, len(data.missing))
    return out
