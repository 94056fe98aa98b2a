"""The `pinsage` command line: parses options, calls the library, maps errors.

Exit codes: 0 success; 2 bad input or usage (`PinsageError`: one message on stderr,
no traceback unless --debug) or an environment the user must fix (disk full, no
permission, read-only or mistyped path: one `error: PATH: cause` line); 1 internal
error (with traceback).
"""

from __future__ import annotations

import errno
import logging
import sys

import click

from pinsage.cli.infer import embed_cmd
from pinsage.cli.lookup import index, query_cmd, serve_cmd
from pinsage.cli.model import eval_cmd, train_cmd
from pinsage.cli.pipeline import demo_cmd, pipeline_cmd
from pinsage.cli.prepare import data, graph, sample
from pinsage.cli.report import report_cmd
from pinsage.errors import PinsageError

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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks for input errors too.")
@click.option("-q", "--quiet", is_flag=True, help="Log warnings only.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, quiet: bool) -> None:
    """PinSage item embeddings: data -> graph -> sampler -> ... -> lookup."""
    ctx.obj = {"debug": debug}
    logging.basicConfig(
        level=logging.WARNING if quiet else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


for command in (
    data,
    graph,
    sample,
    train_cmd,
    eval_cmd,
    embed_cmd,
    index,
    query_cmd,
    serve_cmd,
    pipeline_cmd,
    demo_cmd,
    report_cmd,
):
    cli.add_command(command)


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
        sys.exit(2)
    except OSError as exc:
        message = _environment_error(exc)
        if debug or message is None:
            raise
        click.echo(f"error: {message}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
