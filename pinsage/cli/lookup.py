"""`pinsage index build`, `query` and `serve`: the index and its lookups."""

from __future__ import annotations

import json
from pathlib import Path

import click

from pinsage.config import INDEX_KINDS, MAX_K
from pinsage.errors import ConfigError

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
    type=click.Choice(INDEX_KINDS),
    default="auto",
    show_default=True,
    help="auto: exact search for small catalogues, HNSW, then IVF-PQ by size.",
)
@click.option(
    "--gpu/--no-gpu",
    default=None,
    help="Train and measure on a GPU (needs pinsage[gpu]); default: when present. "
    "--gpu without one says why and builds on the CPU.",
)
@click.option(
    "--graph",
    type=click.Path(path_type=Path),
    default=None,
    help="Graph whose training items recommendations leave out (default: the one "
    "the embeddings came from; used only when they hold user vectors).",
)
@click.option("--overwrite", is_flag=True, help="Rebuild a complete index.")
def build_cmd(
    embeddings: Path,
    out: Path,
    kind: str,
    gpu: bool | None,
    graph: Path | None,
    overwrite: bool,
) -> None:
    """Index every item vector; write the measured recall into the manifest."""
    from pinsage.index import build_index

    m = build_index(
        embeddings, out, kind=kind, gpu=gpu, graph=graph, overwrite=overwrite
    )
    contexts = f" and {m.contexts} users" if m.contexts else ""
    click.echo(
        f"{m.kind} index ({m.factory}, {m.device}) of {m.count} items{contexts} in "
        f"{out}: recall@10 {m.recall_at_10:.4f} against exact search"
    )


@index.command("add")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--embeddings",
    type=click.Path(path_type=Path),
    required=True,
    help="New items' embeddings (`pinsage embed --items`).",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="Write the grown index here  [default: replace --index atomically]",
)
def add_cmd(index_dir: Path, embeddings: Path, out: Path | None) -> None:
    """Append new items' vectors to a built index (then POST /reload to serve it)."""
    from pinsage.index.add import add_to_index

    m = add_to_index(index_dir, embeddings, out=out)
    click.echo(f"added {m.added[-1]['count']} items: {m.count} in {out or index_dir}")


@click.command("query")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), required=True)
@click.option("--item", default=None, help="The item id to find neighbours of.")
@click.option(
    "--user",
    default=None,
    help="A user id to recommend items to, its training items left out "
    "(needs user vectors: `pinsage embed --users`).",
)
@click.option("-k", type=click.IntRange(1, MAX_K), default=10, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="One JSON document on stdout.")
def query_cmd(
    index_dir: Path, item: str | None, user: str | None, k: int, as_json: bool
) -> None:
    """Print the items most similar to --item, or recommended to --user, best first."""
    from pinsage.index import Index

    if (item is None) == (user is None):
        raise click.UsageError("pass exactly one of --item and --user")
    index = Index.load(index_dir)
    if item is not None:
        (doc,) = index.similar([item], k)
        title, found = f"items like {doc['item']}:", doc["neighbors"]
    else:
        (doc,) = index.recommendations([user], k)
        title, found = f"items for user {doc['user']}:", doc["items"]
    if as_json:
        click.echo(json.dumps(doc))
        return
    click.echo(title)
    for rank, n in enumerate(found, 1):
        click.echo(f"{rank:4d}  {n['item']}  {n['score']:.4f}")


@click.command("serve")
@click.option("--index", "index_dir", type=click.Path(path_type=Path), required=True)
@click.option(
    "--index-root",
    type=click.Path(path_type=Path),
    default=None,
    help="The folder POST /reload may take index folders from (symlinks and `..` "
    "resolved first)  [default: the parent of --index]",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; one other than loopback needs --admin-token.",
)
@click.option("--port", type=int, default=8000, show_default=True)
@click.option(
    "--admin-token",
    envvar="PINSAGE_ADMIN_TOKEN",
    default=None,
    help="Bearer token of the admin endpoints (POST /reload); also read from "
    "$PINSAGE_ADMIN_TOKEN, which keeps it out of the process list. Without one, "
    "only loopback clients may reload.",
)
@click.option(
    "--max-body-bytes",
    type=click.IntRange(1),
    default=None,
    help="Larger request bodies are refused (413) before they are read  "
    "[default: 1 MiB]",
)
@click.option(
    "--access-log/--no-access-log",
    default=True,
    show_default=True,
    help="Log every request (off for load tests: a log line per request).",
)
def serve_cmd(
    index_dir: Path,
    index_root: Path | None,
    host: str,
    port: int,
    admin_token: str | None,
    max_body_bytes: int | None,
    access_log: bool,
) -> None:
    """Serve lookups over HTTP (FastAPI on uvicorn; OpenAPI docs at /docs).

    Lookups are open to every client; POST /reload swaps to another index folder
    under --index-root and needs the admin token (or, with none set, a loopback
    client). Listening on a non-loopback address without a token is refused: anyone
    who reaches the port could then swap the index being served.
    """
    from pinsage.index.service import MAX_BODY_BYTES, create_app, is_loopback

    if admin_token is None and not is_loopback(host):
        raise ConfigError(
            f"--host {host} is not a loopback address and no admin token is set, so "
            "anyone who reaches the port could reload the index; pass --admin-token "
            "(or set PINSAGE_ADMIN_TOKEN), or listen on 127.0.0.1."
        )
    import uvicorn

    _check_port_free(host, port)  # before the index loads
    app = create_app(
        index_dir,
        index_root=index_root,
        admin_token=admin_token,
        max_body_bytes=max_body_bytes or MAX_BODY_BYTES,
    )
    uvicorn.run(app, host=host, port=port, log_level="info", access_log=access_log)


def _check_port_free(host: str, port: int) -> None:
    """`ConfigError` (exit 2) when ``host:port`` is taken, before the index loads.

    uvicorn would log the OS error and exit 3 after the index is loaded; a busy port
    is the user's to change. Any other bind error (a host that is not this
    machine's) is left to uvicorn to report.
    """
    import errno
    import socket

    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            return
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror}); another process "
            "holds the port: pass another --port, or stop that process."
        ) from exc
