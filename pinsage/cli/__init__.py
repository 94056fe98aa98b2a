"""The `pinsage` command line: parses options, calls the library, maps errors.

Exit codes: 0 success; 2 bad input or usage (`PinsageError`: one message on stderr,
no traceback unless --debug); 1 internal error (with traceback).
"""

from __future__ import annotations

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


if __name__ == "__main__":
    main()
