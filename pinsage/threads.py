"""Torch's thread count fitted to the CPUs this process may use.

torch starts one intra-op thread per core of the machine, whatever the process may
use: in a container limited by a cgroup quota, a job pinned to some cores by
affinity, or beside the loader's producer threads, it runs more threads than CPUs
and they thrash (a busy 2-core machine trained at 101-237 pairs/s with torch's
default against 611-946 with one thread; benchmarks/train_throughput.py --threads).
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

__all__ = ["fit_torch_threads", "usable_cpus"]

log = logging.getLogger(__name__)

_CGROUP_V2 = Path("/sys/fs/cgroup/cpu.max")
_CGROUP_V1 = Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us")


def _quota() -> float | None:
    """CPUs the cgroup quota allows (None: no quota), from cgroup v2 or v1."""
    try:
        if _CGROUP_V2.exists():
            quota, period = _CGROUP_V2.read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        if _CGROUP_V1.exists():
            quota = int(_CGROUP_V1.read_text())
            period = int((_CGROUP_V1.parent / "cpu.cfs_period_us").read_text())
            return None if quota <= 0 else quota / period
    except (OSError, ValueError):
        return None
    return None


def usable_cpus() -> int:
    """CPUs this process may run on: its affinity, capped by a cgroup CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # no affinity on this platform
        count = os.cpu_count() or 1
    quota = _quota()
    if quota is not None:
        count = min(count, max(1, math.ceil(quota)))
    return max(1, count)


def fit_torch_threads(requested: int | None = None, *, producers: int = 0) -> int:
    """Set torch's intra-op threads; return the count.

    ``requested`` (a config or CLI override) wins; else the usable CPUs less the
    ``producers`` threads that build batches beside the trainer, at least one.
    """
    import torch

    threads = requested or max(1, usable_cpus() - producers)
    if threads != torch.get_num_threads():
        torch.set_num_threads(threads)
    log.info(
        "torch threads: %d (%s; %d usable CPUs)",
        threads,
        "asked for" if requested else f"{producers} producer thread(s) counted",
        usable_cpus(),
    )
    return threads
