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

from pinsage.errors import ClusterError

__all__ = [
    "RAY_LOG_SETTING",
    "cluster_address",
    "lost_work_error",
    "quiet_ray_loggers",
    "ray_session",
]

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


# Ray's errors for work lost with a node or a worker process (not a bug in a task).
_LOST_WORK = (
    "ActorDiedError",
    "ActorUnavailableError",
    "NodeDiedError",
    "ObjectLostError",
    "ObjectReconstructionFailedError",
    "OwnerDiedError",
    "WorkerCrashedError",
    "WorkerHealthCheckFailedError",  # Ray Train: a worker's node stopped answering
    "WorkerHealthCheckTimeoutError",
)


def lost_work_error(exc: BaseException) -> BaseException | None:
    """The error in ``exc``'s chain that is Ray losing work with a node or worker.

    None when there is none (the failure is the task's own, or not Ray's).
    Ray Data re-raises a task's failure wrapped (`RayTaskError`), and when the
    wrapped error cannot be rebuilt on the driver, only as text
    (`UnserializableException`), so both the chain's types and that text count;
    Ray Train reports each worker's failure apart (``worker_failures``).
    """
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in _LOST_WORK:
            return seen
        if type(seen).__name__ == "UnserializableException":
            return seen if any(name in str(seen) for name in _LOST_WORK) else None
        for failure in getattr(seen, "worker_failures", {}).values():
            if (lost := lost_work_error(failure)) is not None:
                return lost
        seen = getattr(seen, "cause", None) or seen.__cause__ or seen.__context__
    return None


@contextmanager
def _cluster_errors() -> Iterator[None]:
    """Re-raise Ray's lost-node errors as `ClusterError` (rerun), others as they are."""
    try:
        yield
    except Exception as exc:
        lost = lost_work_error(exc)
        if lost is None:
            raise
        text = str(lost).strip()
        why = text.splitlines()[-1] if text else type(lost).__name__
        raise ClusterError(
            f"the Ray cluster lost a node or worker while the job ran ({why}); "
            "nothing was published. Rerun once the cluster is whole (`ray status`): "
            "an embedding job starts over, training resumes from its last checkpoint."
        ) from exc


@contextmanager
def ray_session(
    address: str | None = None, num_cpus: int | None = None
) -> Iterator[None]:
    """Use the running Ray, or start one (local, or connected to ``address``).

    ``address`` is a cluster's (``"auto"``, ``"ray://host:10001"``; None:
    `cluster_address`'s); with none a local Ray starts with ``num_cpus`` CPUs (None:
    every core). A Ray started here is
    shut down on exit; one already running is left alone. Work lost with a node
    or worker is raised as `ClusterError`.
    """
    with _connected(address, num_cpus), _cluster_errors():
        yield


@contextmanager
def _connected(address: str | None, num_cpus: int | None) -> Iterator[None]:
    """`ray_session` without the error translation: Ray up for the block."""
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
