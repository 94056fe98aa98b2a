"""`pinsage embed`: the bulk embedding-inference job."""

from __future__ import annotations

from pathlib import Path

import click

__all__ = ["embed_cmd"]


@click.command("embed")
@click.option("--run", "run_dir", type=click.Path(path_type=Path), required=True)
@click.option("--graph", "graph_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--out", type=click.Path(path_type=Path), required=True, help="Embeddings folder."
)
@click.option(
    "--engine",
    type=click.Choice(["ray", "local"]),
    default="ray",
    show_default=True,
    help="ray: map / join / reduce on Ray Data; local: the same layers in torch.",
)
@click.option(
    "--ray-address",
    default=None,
    help="Run on this Ray cluster (default: a local Ray started in-process).",
)
@click.option("--contexts", is_flag=True, help="Also write context (user) vectors.")
@click.option("--overwrite", is_flag=True, help="Recompute a complete output.")
def embed_cmd(
    run_dir: Path,
    graph_dir: Path,
    out: Path,
    engine: str,
    ray_address: str | None,
    contexts: bool,
    overwrite: bool,
) -> None:
    """Embed every item (and context) of a graph with a trained run."""
    from pinsage.infer import embed

    manifest = embed(
        run_dir,
        graph_dir,
        out,
        engine=engine,
        ray_address=ray_address,
        contexts=contexts,
        overwrite=overwrite,
    )
    click.echo(f"{manifest['count']} item embeddings (dim {manifest['dim']}) in {out}")
