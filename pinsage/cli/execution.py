"""The options that override a config's ``execution`` section, shared by commands.

`pinsage train` and `pinsage pipeline` take the same five; each defaults to the
config's value (`pinsage.config.ExecutionConfig`), so YAML says how a run executes
and the command line changes it for one invocation.
"""

from __future__ import annotations

from collections.abc import Callable

import click

from pinsage.config import PipelineConfig

__all__ = ["EXECUTION_KEYS", "execution_options", "with_execution"]

EXECUTION_KEYS = ("device", "producer", "producers", "workers", "ray_address")

_OPTIONS = [
    click.option(
        "--device", default=None, help="auto, cpu, cuda or cuda:N [execution.device]."
    ),
    click.option(
        "--producer",
        type=click.Choice(["process", "thread"]),
        default=None,
        help="Kind of batch producers; threads measured faster on 2 cores "
        "[execution.producer].",
    ),
    click.option(
        "--producers",
        type=click.IntRange(0),
        default=None,
        help="Batch producers per trainer; 0 builds batches in the training loop "
        "[execution.producers].",
    ),
    click.option(
        "--workers",
        type=click.IntRange(1),
        default=None,
        help="Data-parallel workers: N > 1 trains under Ray Train (DDP); 1 needs no "
        "Ray [execution.workers].",
    ),
    click.option(
        "--ray-address",
        default=None,
        help="The Ray cluster of the Ray jobs (default: $RAY_ADDRESS when set, else "
        "a local Ray) [execution.ray_address].",
    ),
]


def execution_options(command: Callable) -> Callable:
    """Add the ``execution`` overrides (`EXECUTION_KEYS`) to a click command."""
    for option in reversed(_OPTIONS):
        command = option(command)
    return command


def with_execution(cfg: PipelineConfig, overrides: dict) -> PipelineConfig:
    """``cfg`` with the execution keys given on the command line (None: the config's).

    `ConfigError` (exit 2) for a value the section rejects, as if it were in YAML.
    """
    given = {k: overrides[k] for k in EXECUTION_KEYS if overrides.get(k) is not None}
    return cfg.executed(**given)
