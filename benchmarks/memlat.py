"""Memory latency of this machine: a pointer-chasing loop (one dependent random read
per step) over an array much larger than the caches, compiled from C at run time."""

from __future__ import annotations

import ctypes
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

_SOURCE = r"""
#include <stdint.h>
uint64_t chase(const uint64_t *next, uint64_t start, uint64_t steps) {
    uint64_t i = start;
    for (uint64_t k = 0; k < steps; k++) i = next[i];
    return i;
}
"""


def pointer_chase_ns(
    array_mib: int = 512, steps: int = 20_000_000, seed: int = 0
) -> float | None:
    """Nanoseconds per dependent random read, or None when no C compiler is found."""
    with tempfile.TemporaryDirectory() as tmp:
        src, lib = Path(tmp) / "chase.c", Path(tmp) / "chase.so"
        src.write_text(_SOURCE)
        try:
            subprocess.run(
                ["cc", "-O2", "-shared", "-fPIC", str(src), "-o", str(lib)], check=True
            )
        except (OSError, subprocess.CalledProcessError):
            return None
        chase = ctypes.CDLL(str(lib)).chase
        chase.restype = ctypes.c_uint64
        chase.argtypes = [ctypes.c_void_p, ctypes.c_uint64, ctypes.c_uint64]
        n = array_mib * 2**20 // 8
        order = np.random.default_rng(seed).permutation(n).astype(np.uint64)
        nxt = np.empty(n, dtype=np.uint64)
        nxt[order] = np.roll(order, -1)  # one random cycle through every slot
        chase(nxt.ctypes.data, int(order[0]), steps // 10)  # warm the page tables
        t0 = time.perf_counter()
        chase(nxt.ctypes.data, int(order[0]), steps)
        return (time.perf_counter() - t0) / steps * 1e9
