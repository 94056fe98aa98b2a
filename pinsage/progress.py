"""Progress lines for logs: what a progress bar shows, when there is no terminal.

tqdm bars draw only on a terminal (``disable=None``); a scheduler's log (a file, a
pipe) would otherwise see nothing between a job's first and last line. `ProgressLog`
logs one line every ``every_s`` seconds instead, with the rate and time left.
"""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["EVERY_S", "ProgressLog"]

EVERY_S = 30.0  # seconds between progress lines in a log


class ProgressLog:
    """Log ``what done/total`` with rate and ETA every ``every_s`` seconds.

    Silent when stderr is a terminal (the progress bar shows the same) unless
    ``always``.
    """

    def __init__(
        self,
        log: logging.Logger,
        what: str,
        total: int,
        *,
        start: int = 0,
        unit: str = "steps",
        every_s: float = EVERY_S,
        always: bool = False,
    ) -> None:
        self.log, self.what, self.total, self.unit = log, what, total, unit
        self.every_s = every_s
        self.enabled = always or not sys.stderr.isatty()
        self._start, self._first = time.perf_counter(), start
        self._last = self._start

    def update(self, done: int, detail: str = "") -> None:
        """Log a line if ``every_s`` has passed since the last one."""
        now = time.perf_counter()
        if not self.enabled or now - self._last < self.every_s:
            return
        self._last = now
        rate = (done - self._first) / max(now - self._start, 1e-9)
        left = (self.total - done) / rate if rate > 0 else float("inf")
        eta = time.strftime("%H:%M:%S", time.gmtime(left)) if left < 86400 else "-"
        self.log.info(
            "%s: %d/%d %s (%.1f%%), %.1f %s/s, ETA %s%s",
            self.what,
            done,
            self.total,
            self.unit,
            100 * done / max(self.total, 1),
            rate,
            self.unit,
            eta,
            f"; {detail}" if detail else "",
        )
