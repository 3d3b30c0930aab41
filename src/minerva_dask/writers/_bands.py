"""Compute an image band by band with a bounded number of bands in flight, and report.

Writers hand over dask objects one band (a row of chunks) at a time; this module computes
them on the threaded scheduler or a distributed client, keeping at most ``prefetch``
bands in flight so memory stays flat, and yields the results in order.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

__all__ = ["Progress", "compute_in_order"]


class Progress:
    """A one-line progress report: tiles done / total, rate, time left.

    On a terminal the line is redrawn; elsewhere a line is printed every ``every_s``.
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
        self.started = time.perf_counter()
        self._last = 0.0
        self.every_s = every_s
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def advance(self, count: int) -> None:
        self.done += count
        if not self.enabled or count == 0:
            return
        now = time.perf_counter()
        finished = self.done >= self.total
        if not self._tty and not finished and now - self._last < self.every_s:
            return
        self._last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else float("nan")
        eta = f"{left:.0f} s left" if left == left else "-"
        text = f"{self.label}: {self.done}/{self.total} tiles, {rate:.1f} tiles/s, {eta}"
        if self._tty:
            self.stream.write("\r" + text + ("\n" if finished else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


def compute_in_order(
    jobs: Iterable[Any],
    *,
    client: Any = None,
    prefetch: int = 2,
    compute: Callable[[Any], Any] | None = None,
    retries: int = 2,
) -> Iterator[Any]:
    """Compute each job (a dask collection, or a tuple of them) and yield results in order.

    At most ``prefetch`` jobs are in flight. With a ``distributed.Client`` jobs go to the
    cluster (with ``retries`` for transient task failures); otherwise to the threaded
    scheduler (``compute`` overrides how one job is computed there).
    """
    prefetch = max(1, prefetch)
    pending: deque[Any] = deque()
    if client is not None:
        for job in jobs:  # a job may be a list: compute gives a list of futures then
            pending.append(client.compute(job, retries=retries))
            if len(pending) >= prefetch:
                yield client.gather(pending.popleft())
        while pending:
            yield client.gather(pending.popleft())
        return
    if compute is None:
        import dask

        def compute(job: Any) -> Any:
            return dask.compute(job)[0]

    with ThreadPoolExecutor(max_workers=prefetch) as pool:
        for job in jobs:
            pending.append(pool.submit(compute, job))
            if len(pending) >= prefetch:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
