"""Jobs computed in order with a bounded number in flight.

A job is a dask object, often one band (a row of chunks) of an image; it is computed on
the threaded scheduler (or as ``compute`` says) or on a distributed client, at most
``prefetch`` in flight so memory stays flat, and the results are yielded in order.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["compute_in_order", "release"]


def release(futures: Iterable[Any]) -> None:
    """Let go of ``futures`` (lists of them too; ``None`` skipped), so that a failed or
    stopped export leaves no task or result on the cluster: held futures would keep them
    there as long as the error's traceback lives. The scheduler stops and forgets what no
    future wants any more; another holder of the same keys (the user's own persisted
    array) keeps them. Not ``client.cancel``: that cancels every holder's future of a
    key, and distributed's scheduler asserts, and drops the client's connection, when a
    cancelled task has a dependent nobody holds."""
    for item in futures:
        for future in item if isinstance(item, list | tuple) else [item]:
            if future is not None:
                with contextlib.suppress(Exception):  # a client gone: nothing to release
                    future.release()


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
        current = None
        try:
            for job in jobs:  # a job may be a list: compute gives a list of futures then
                pending.append(client.compute(job, retries=retries))
                if len(pending) >= prefetch:
                    current = pending.popleft()
                    yield client.gather(current)
            while pending:
                current = pending.popleft()
                yield client.gather(current)
        except BaseException:  # a failure, or the consumer stopped: nothing left behind
            release([current, *pending])
            raise
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
