"""`pinsage index build`, `query` and `serve`: the index and its lookups."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pinsage.index.build import KINDS
from pinsage.index.search import MAX_K

__all__ = ["index", "query_cmd", "serve_cmd"]


@click.group("index")
def index() -> None:
    """Build the nearest-neighbour index over item embeddings."""


@index.command("build")
@click.option(
    "--embeddings",
    type=click.Path(path_type=Path),
    required=True,
    help="Embeddings folder (`pinsage embed`).",
)
@click.option("--out", type=click.Path(path_type=Path), required=True)
@click.option(
    "--kind",
    type=click.Choice(KINDS),
    default="auto",
    show_default=True,
    help="auto: exact search for small catalogues, HNSW, then IVF-PQ by size.",
)
@click.option("--overwrite", is_flag=True, help="Rebuild a complete index.")
def build_cmd(embeddings: Path, out: Path, kind: str, overwrite: bool) -> None:
    """Index every item vector; write the measured recall into the manifest."""
    from pinsage.index import build_index

    m = build_index(embeddings, out, kind=kind, overwrite=overwrite)
    click.echo(
        f"{m['kind']} index ({m['factory']}) of {m['count']} items in {out}: "
        f"recall@10 {m['recall@10']:.4f} against exact search"
    )


@click.command("query")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), required=True)
@click.option("--item", required=True, help="The item id to find neighbours of.")
@click.option("-k", type=click.IntRange(1, MAX_K), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def query_cmd(index_dir: Path, item: str, k: int, as_json: bool) -> None:
    """Print the items most similar to ITEM, best first."""
    from pinsage.index import Index

    (doc,) = Index.load(index_dir).similar([item], k)
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(f"items like {doc['item']}:")
    for rank, n in enumerate(doc["neighbors"], 1):
        click.echo(f"{rank:4d}  {n['item']}  {n['score']:.4f}")


@click.command("serve")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), required=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8000, show_default=True)
def serve_cmd(index_dir: Path, host: str, port: int) -> None:
    """Serve lookups over HTTP (FastAPI on uvicorn; OpenAPI docs at /docs)."""
    import uvicorn

    from pinsage.index.service import create_app

    uvicorn.run(create_app(index_dir), host=host, port=port, log_level="info")
