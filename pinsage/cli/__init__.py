"""The `pinsage` command line: parses options, calls the library, maps errors.

Exit codes: 0 success; 2 bad input or usage (`PinsageError`: one message on stderr,
no traceback unless --debug) or an environment the user must fix (disk full, no
permission, read-only or mistyped path: one `error: PATH: cause` line); 75 the Ray
cluster lost a node mid-job (`ClusterError`: rerun); 1 internal error (with
traceback).
"""

from __future__ import annotations

import errno
import importlib
import logging
import sys

import click

from pinsage.errors import PinsageError
from pinsage.ray_session import RAY_LOG_SETTING

__all__ = ["cli", "main"]

_WRITE_ELSEWHERE = "free space or write elsewhere"
_PERMISSION = "choose a folder you may write, or fix its permissions"
# OSErrors the user's machine or paths cause, with how to fix each. Every other OSError
# (and a missing file without its path) may be our bug: a traceback.
_ENVIRONMENT_ERRORS = {
    errno.ENOSPC: _WRITE_ELSEWHERE,
    errno.EDQUOT: _WRITE_ELSEWHERE,
    errno.EACCES: _PERMISSION,
    errno.EPERM: _PERMISSION,
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.ENOTDIR: "a part of the path is a file, not a folder: fix the path",
    errno.EISDIR: "the path is a folder, not a file: fix the path",
    errno.EEXIST: "a file stands where a folder must go: fix the path",
    errno.ENOENT: "check the path",
    errno.ENAMETOOLONG: "choose a shorter path",
}

# name -> (module, attribute, first line of its help). A command's module is imported
# only when that command runs (or shows its help): `pinsage --help` and `query` must
# not pay for torch, Ray and the data writers (seconds of imports).
COMMANDS = {
    "data": (
        "prepare",
        "data",
        "Create data folders: synthetic, or imported from public formats.",
    ),
    "graph": ("prepare", "graph", "Build the bipartite graph store."),
    "sample": (
        "prepare",
        "sample",
        "Print importance neighbourhoods (top items by random-walk visits).",
    ),
    "train": ("train_eval", "train_cmd", "Train PinSage on a graph."),
    "eval": (
        "train_eval",
        "eval_cmd",
        "Evaluate a run: recall/NDCG@K for users, hit-rate@K/MRR for items.",
    ),
    "embed": (
        "infer",
        "embed_cmd",
        "Embed every item (and user) of a graph with a trained run.",
    ),
    "index": (
        "lookup",
        "index",
        "Build the nearest-neighbour index over item embeddings.",
    ),
    "query": (
        "lookup",
        "query_cmd",
        "Print the items most similar to --item, or recommended to --user, best first.",
    ),
    "serve": (
        "lookup",
        "serve_cmd",
        "Serve lookups over HTTP (FastAPI on uvicorn; OpenAPI docs at /docs).",
    ),
    "pipeline": (
        "pipeline",
        "pipeline_cmd",
        "Run data, graph, train, eval, embed and index in order; skip complete ones.",
    ),
    "demo": (
        "pipeline",
        "demo_cmd",
        "Run the whole pipeline on generated data and print sample lookups.",
    ),
    "report": (
        "report",
        "report_cmd",
        "Write an HTML report: curves, metrics, stage timings, sample lookups.",
    ),
}


class _LazyGroup(click.Group):
    """A group whose commands are imported from `COMMANDS` when first used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute, _ = COMMANDS[name]
        return getattr(importlib.import_module(f"pinsage.cli.{module}"), attribute)

    def format_commands(self, ctx: click.Context, formatter) -> None:
        """The command list from `COMMANDS`' help lines, importing nothing."""
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.utils.make_default_short_help(COMMANDS[name][2], limit))
            for name in sorted(COMMANDS)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for input errors too.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
@click.option(
    "-v", "--verbose", is_flag=True, help="Also show Ray's own info and warnings."
)
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool, verbose: bool) -> None:
    """PinSage item embeddings: data -> graph -> sampler -> ... -> lookup."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # Read by pinsage.ray_session when a Ray session starts.
    logging.getLogger(RAY_LOG_SETTING).setLevel(
        logging.INFO if verbose else logging.ERROR
    )


def _environment_error(exc: OSError) -> str | None:
    """The one-line message for an OSError the user can fix, or None.

    Disk full or a path that cannot be written is not a bug of ours: a traceback would
    bury the path and the cause, which are all the user needs. (pyarrow leaves
    ``filename`` empty and names the path in ``strerror``; a failed ``write()`` names
    none, so `pinsage.atomic.atomic_dir` adds its artifact's.)
    """
    hint = _ENVIRONMENT_ERRORS.get(exc.errno)  # type: ignore[arg-type]
    if hint is None or (exc.errno == errno.ENOENT and exc.filename is None):
        return None
    where = f"{exc.filename}: " if exc.filename is not None else ""
    return f"{where}{exc.strerror or exc}; {hint}."


def main() -> None:
    """Console entry point: run the CLI and map errors to exit codes."""
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except PinsageError as exc:
        if debug:
            raise
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except OSError as exc:
        message = _environment_error(exc)
        if debug or message is None:
            raise
        click.echo(f"error: {message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
