"""`pinsage report`: one self-contained HTML page about a run root."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["report_cmd"]


@click.command("report")
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    required=True,
    help="Run root (the --root of `pinsage pipeline`).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="HTML file to write (default: ROOT/report.html).",
)
def report_cmd(root: Path, out: Path | None) -> None:
    """Write an HTML report: curves, metrics, stage timings, sample lookups."""
    from pinsage.report import write_report

    click.echo(write_report(root, out))
