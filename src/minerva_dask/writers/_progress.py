"""One progress report for every writer and scheduler: tiles done, rate, time left.

The rate is measured from the first tiles that finish, not from the start: a cluster's
start-up, the graph's construction and the first tiles' latency are paid once, and
counting them as if every tile paid them made the first estimate thousands of seconds for
a job of seconds. Tiles a resumed export skipped (:meth:`Progress.skip`) count as done but
never as work done now, so they make no rate of their own. No time left is given until a
rate has been measured over at least :data:`MIN_WINDOW_S` and more than one batch.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["MIN_WINDOW_S", "Progress"]

MIN_WINDOW_S = 1.0  # seconds of finished tiles before a rate (and so a time left) is given


class Progress:
    """A one-line progress report: tiles done / total, rate, time left.

    On a terminal the line is redrawn; elsewhere a line is printed every ``every_s`` (and
    at the end). ``advance(n)``: ``n`` tiles just done; ``skip(n)``: ``n`` tiles found
    done already (a resumed export).
    """

    def __init__(
        self,
        total: int,
        label: str = "tiles",
        *,
        enabled: bool = True,
        stream: TextIO | None = None,
        every_s: float = 10.0,
    ) -> None:
        self.total, self.label, self.enabled = max(total, 1), label, enabled
        self.stream = stream or sys.stderr
        self.done = 0
        self.skipped = 0
        self.started = time.perf_counter()
        self._first: tuple[float, int] | None = None  # (when, fresh tiles) at the first batch
        self._last = float("-inf")
        self.every_s = every_s
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def skip(self, count: int) -> None:
        """``count`` tiles were done by an earlier, interrupted run."""
        self.done += count
        self.skipped += count

    def rate(self, now: float | None = None) -> float | None:
        """Tiles per second done by this run, measured since its first batch; ``None``
        until that is at least :data:`MIN_WINDOW_S` and more than one batch."""
        now = time.perf_counter() if now is None else now
        fresh = self.done - self.skipped
        if fresh >= self.total - self.skipped and fresh > 0:  # all done: the whole run's rate
            return fresh / max(now - self.started, 1e-9)
        if self._first is None:
            return None
        since, at = self._first
        if now - since < MIN_WINDOW_S or fresh <= at:
            return None
        return (fresh - at) / (now - since)

    def advance(self, count: int) -> None:
        self.done += count
        now = time.perf_counter()
        if count and self._first is None:
            self._first = (now, self.done - self.skipped)
        if not self.enabled or count == 0:
            return
        finished = self.done >= self.total
        if not self._tty and not finished and now - self._last < self.every_s:
            return
        self._last = now
        self.stream.write(("\r" if self._tty else "") + self.line(now))
        self.stream.write("\n" if finished or not self._tty else "")
        self.stream.flush()

    def line(self, now: float | None = None) -> str:
        """The report as it stands: ``label: done/total tiles, rate, time left``."""
        now = time.perf_counter() if now is None else now
        rate = self.rate(now)
        left = self.total - self.done
        if left <= 0:
            eta = f"done in {now - self.started:.1f} s"
        elif rate:
            eta = f"{left / rate:.0f} s left"
        else:
            eta = "estimating time left"
        speed = f"{rate:.1f} tiles/s" if rate else "- tiles/s"
        resumed = f" ({self.skipped} resumed)" if self.skipped else ""
        return f"{self.label}: {self.done}/{self.total} tiles{resumed}, {speed}, {eta}"
