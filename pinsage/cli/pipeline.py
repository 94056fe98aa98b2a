"""`pinsage pipeline` and `pinsage demo`: every stage under one run root."""

from __future__ import annotations

from pathlib import Path

import click

from pinsage.cli.execution import execution_options, with_execution
from pinsage.pipeline import STAGES

__all__ = ["demo_cmd", "pipeline_cmd"]


@click.command("pipeline")
@click.option("--config", "config_path", type=click.Path(path_type=Path), required=True)
@click.option(
    "--root",
    type=click.Path(path_type=Path),
    required=True,
    help="Run root: graph/, run/, embeddings/, index/ and manifest.json go here.",
)
@click.option(
    "--only",
    "stages",
    type=click.Choice(STAGES),
    multiple=True,
    help="Run just these stages (repeatable; default: all, in order).",
)
@click.option("--overwrite", is_flag=True, help="Redo the stages even when complete.")
@execution_options
def pipeline_cmd(
    config_path: Path,
    root: Path,
    stages: tuple[str, ...],
    overwrite: bool,
    **execution: str | int | None,
) -> None:
    """Run data, graph, train, eval, embed and index in order; skip complete ones."""
    from pinsage.config import load_config
    from pinsage.pipeline import run_pipeline

    manifest = run_pipeline(
        with_execution(load_config(config_path), execution),
        root,
        stages=stages or STAGES,
        overwrite=overwrite,
    )
    for name, stage in manifest.stages.items():
        state = "skipped (complete)" if stage.skipped else f"{stage.seconds}s"
        click.echo(f"{name:>6}: {state}")


@click.command("demo")
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=Path("pinsage-demo"),
    show_default=True,
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=None,
    help="Run the demo with another config (default: the embedded demo config).",
)
def demo_cmd(out: Path, config_path: Path | None) -> None:
    """Run the whole pipeline on generated data and print sample lookups."""
    from pinsage.config import load_config
    from pinsage.demo import run_demo

    cfg = load_config(config_path) if config_path else None
    run_demo(out, cfg=cfg, echo=click.echo)
