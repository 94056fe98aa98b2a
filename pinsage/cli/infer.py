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
    type=click.Choice(["auto", "ray", "local"]),
    default="auto",
    show_default=True,
    help="ray: map / join / reduce on Ray Data; local: the same layers in torch; "
    "auto: local while the graph fits comfortably in memory and no --ray-address "
    "is given, else ray (the choice and why are logged).",
)
@click.option(
    "--ray-address",
    default=None,
    help="Run on this Ray cluster (default: $RAY_ADDRESS when set, else a local Ray "
    "started in-process).",
)
@click.option(
    "--users",
    "--contexts",
    "contexts",
    is_flag=True,
    help="Also write user vectors (the graph's contexts).",
)
@click.option(
    "--items",
    "new_items",
    type=click.Path(path_type=Path),
    default=None,
    help="Embed only these items, new since training (an items file with the "
    "graph's feature columns), from their features and --new-interactions.",
)
@click.option(
    "--new-interactions",
    type=click.Path(path_type=Path),
    default=None,
    help="With --items: the new items' interactions with users the graph knows.",
)
@click.option("--overwrite", is_flag=True, help="Recompute a complete output.")
def embed_cmd(
    run_dir: Path,
    graph_dir: Path,
    out: Path,
    engine: str,
    ray_address: str | None,
    contexts: bool,
    new_items: Path | None,
    new_interactions: Path | None,
    overwrite: bool,
) -> None:
    """Embed every item (and user) of a graph with a trained run.

    With --items, embed only items that arrived after training (no retraining; the
    local engine); `pinsage index add` then puts them in an index.
    """
    if new_items is not None:
        _embed_new(
            run_dir, graph_dir, out, new_items, new_interactions, contexts, overwrite
        )
        return
    if new_interactions is not None:
        raise click.UsageError("--new-interactions goes with --items.")
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
    click.echo(f"{manifest.count} item embeddings (dim {manifest.dim}) in {out}")


def _embed_new(
    run_dir: Path,
    graph_dir: Path,
    out: Path,
    items: Path,
    interactions: Path | None,
    contexts: bool,
    overwrite: bool,
) -> None:
    if contexts:
        raise click.UsageError("--users does not go with --items (items only).")
    from pinsage.infer.new_items import embed_new_items

    manifest = embed_new_items(
        run_dir, graph_dir, items, out, interactions=interactions, overwrite=overwrite
    )
    click.echo(
        f"{manifest.count} new item embeddings (dim {manifest.dim}, "
        f"{manifest.with_interactions} interactions) in {out}"
    )
