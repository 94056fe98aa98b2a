"""One Ray session per job: use the running Ray, or start a local one, or connect.

The embedding job (`pinsage.infer.ray_engine`) and data-parallel training
(`pinsage.train.distributed`) both run inside `ray_session`. Ray itself is imported
only when a session starts, so the CLI can name `RAY_LOG_SETTING` at start-up without
paying for Ray's import.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["RAY_LOG_SETTING", "cluster_address", "quiet_ray_loggers", "ray_session"]

# Local Ray only: keep idle worker processes alive between stages. Ray otherwise kills
# workers beyond one per CPU within a second, and every shuffle stage then waits
# seconds for fresh Python processes (measured: a 50-row join, 7 s -> 0.15 s).
_LOCAL_SYSTEM_CONFIG = {"idle_worker_killing_time_threshold_ms": 60_000}

# The level of this (otherwise unused) logger is the level Ray's own Python loggers
# get: the CLI sets it (ERROR, or INFO with --verbose) without importing Ray.
RAY_LOG_SETTING = "pinsage.ray_logs"
_RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune")


def ray_log_level() -> int:
    """Ray's loggers' level: `RAY_LOG_SETTING`'s when one is set, else Ray's INFO.

    Ray configures its loggers with a handler of their own (they do not propagate),
    so the root level does not reach them; its start-up, execution plans and
    "finished in" lines would fill a job's console otherwise.
    """
    level = logging.getLogger(RAY_LOG_SETTING).level
    return logging.INFO if level == logging.NOTSET else level


def quiet_ray_loggers() -> None:
    """Set Ray's loggers to `ray_log_level` (``ray.init`` resets its own)."""
    for name in _RAY_LOGGERS:
        logging.getLogger(name).setLevel(ray_log_level())


def cluster_address(address: str | None) -> str | None:
    """The Ray cluster a job uses: ``address``, else $RAY_ADDRESS, else None (local).

    Under `ray job submit` Ray sets RAY_ADDRESS, so a submitted job runs on the
    cluster it was submitted to (as ``ray.init()`` itself does).
    """
    return address or os.environ.get("RAY_ADDRESS") or None


@contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None
) -> Iterator[None]:
    """Use the running Ray, or start one (local, or connected to ``address``).

    ``address`` is a cluster's (``"auto"``, ``"ray://host:10001"``; None:
    `cluster_address`'s); with none a local Ray starts with ``num_cpus`` CPUs (None:
    every core). A Ray started here is
    shut down on exit; one already running is left alone.
    """
    import ray
    import ray.data

    # Our own bar shows the layers; Ray Data's per-operator progress (logged every
    # few seconds when stderr is not a terminal) would drown the job's log.
    ray.data.DataContext.get_current().enable_progress_bars = False
    quiet_ray_loggers()
    if ray.is_initialized():
        yield
        return
    address = cluster_address(address)
    if address is not None:
        ray.init(
            address=address,
            log_to_driver=False,
            logging_level=ray_log_level(),
        )
    else:
        ray.init(
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=ray_log_level(),
            _system_config=_LOCAL_SYSTEM_CONFIG,
        )
    quiet_ray_loggers()  # ray.init configured its loggers again
    try:
        yield
    finally:
        ray.shutdown()
