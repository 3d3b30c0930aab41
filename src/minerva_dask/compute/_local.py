"""A writer's work on this machine's threads.

Every pool here is our own, of the scheduler's size (``num_workers``, else one thread per
core), and shut down before a failure reaches the writer (running tasks finished, queued
ones cancelled): dask raises a failed task's error at once while its other tasks still
run, and a write landing after the writer cleaned up would put files back. A
``scheduler`` in the compute options other than threads runs the tasks instead.

The TIFF stage executor runs each level-0 block on one thread of a pool, as the threaded
scheduler would run it but one block per thread (never more blocks rendering than
threads, whatever order dask would pick), and the stages above on a thread of their own,
overlapping them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ._order import compute_in_order

__all__ = ["LocalRunner", "LocalStages"]


class LocalRunner:
    """:class:`~minerva_dask.writers._runner.Runner` on this process's threads;
    ``options``: dask's compute options (``num_workers``, ``scheduler``...)."""

    distributed = False
    renders_here = True

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        self.options = dict(options or {})
        self.threads = int(self.options.get("num_workers") or os.cpu_count() or 1)

    def in_order(self, jobs: Iterable[Any], *, prefetch: int, name: str = "bands") -> Iterator[Any]:
        with contextlib.ExitStack() as stack:
            compute = self._bounded_compute(stack, name)
            results = compute_in_order(jobs, prefetch=prefetch, compute=compute)
            stack.callback(results.close)  # first: the jobs in flight finish, then the pool
            yield from results

    def _bounded_compute(self, stack: contextlib.ExitStack, name: str) -> Callable[[Any], Any]:
        """How one job is computed: on the threaded scheduler (dask's default for
        delayed writes), on a pool of our own shut down when ``stack`` closes."""
        import dask
        import dask.threaded
        from dask.base import get_scheduler

        kwargs = dict(self.options)
        if get_scheduler(scheduler=kwargs.get("scheduler")) not in (None, dask.threaded.get):
            return lambda job: dask.compute(job, **kwargs)[0]
        kwargs.pop("scheduler", None)
        workers = kwargs.pop("num_workers", None) or os.cpu_count() or 1
        pool = ThreadPoolExecutor(workers, thread_name_prefix=name)
        stack.callback(pool.shutdown, wait=True, cancel_futures=True)
        return lambda job: dask.compute(job, scheduler="threads", pool=pool, **kwargs)[0]

    def compute_all(self, tasks: list[Any], *, name: str = "tasks") -> list[Any]:
        import dask
        import dask.threaded
        from dask.base import get_scheduler

        kwargs = self.options
        if "pool" in kwargs or get_scheduler(scheduler=kwargs.get("scheduler")) not in (
            None,  # the default: dask's threaded scheduler
            dask.threaded.get,
        ):
            return list(dask.compute(*tasks, **kwargs))
        # a pool of our own, joined: no task runs after a failure leaves here
        with ThreadPoolExecutor(self.threads, thread_name_prefix=name) as pool:
            return list(dask.compute(*tasks, **{**kwargs, "pool": pool}))

    def persist(self, collection: Any) -> Any:
        return collection.persist(**self.options)

    def stage_executor(self, stack: contextlib.ExitStack) -> LocalStages:
        return LocalStages(self.options, stack)


class _Part:
    """Item ``index`` (or the whole) of a local future's result (lists), then item
    ``part``, taken once: the result no longer holds it (drained tiles are freed even
    while their batch's small blocks wait for a parent)."""

    __slots__ = ("future", "index", "part")

    def __init__(self, future: Future, index: int | None, part: int) -> None:
        self.future, self.index, self.part = future, index, part

    def get(self) -> Any:
        value = self.future.result()
        item = value if self.index is None else value[self.index]
        taken, item[self.part] = item[self.part], None
        return taken


class LocalStages:
    """Level-0 blocks one per thread on a pool of the scheduler's size; the stages above on
    a thread of their own, overlapping them. The pools are shut down (queued work
    cancelled, running work finished) when ``stack`` closes."""

    def __init__(self, compute_kwargs: dict[str, Any], stack: contextlib.ExitStack) -> None:
        from dask.base import get_scheduler
        from dask.local import get_sync
        from dask.threaded import get as threaded

        kwargs = dict(compute_kwargs)
        scheduler = get_scheduler(scheduler=kwargs.pop("scheduler", None))
        self.threads = int(kwargs.pop("num_workers", None) or os.cpu_count() or 1)
        self.threaded = scheduler in (None, threaded)
        if self.threaded:
            self.get: Callable[..., Any] = get_sync  # dask's callbacks apply, as threaded
        else:  # another scheduler runs each block, one at a time
            self.get = lambda graph, keys: scheduler(graph, keys, **kwargs)
            self.threads = 1
        self.leaf_pool = ThreadPoolExecutor(self.threads, thread_name_prefix="tiff-blocks")
        self.node_pool = ThreadPoolExecutor(1, thread_name_prefix="tiff-stages")
        self.batch_pool = ThreadPoolExecutor(1, thread_name_prefix="tiff-batches")
        for pool in (self.leaf_pool, self.node_pool, self.batch_pool):
            stack.callback(pool.shutdown, wait=True, cancel_futures=True)

    def sizes(self, fan: int, prefetch: int) -> tuple[int, int]:
        # one block per thread, as many waiting: this process holds the window
        return self.threads, 2 * self.threads

    def leaves(self, blocks: Any, cells: list[tuple[int, int]]) -> list[tuple[_Part, _Part]]:
        if blocks.shared and self.threaded:  # one threaded run: shared tasks run once
            from dask.threaded import get

            graph, keys = blocks.tasks(cells)
            flat = [key for pair in keys for key in pair]

            def run() -> list[list[Any]]:
                values = get(graph, flat, num_workers=self.threads)
                return [[values[i], values[i + 1]] for i in range(0, len(values), 2)]

            future = self.batch_pool.submit(run)
            return [(_Part(future, k, 0), _Part(future, k, 1)) for k in range(len(cells))]
        handles = []
        for cell in cells:
            graph, ((tiles, small),) = blocks.tasks([cell])
            future = self.leaf_pool.submit(lambda g=graph, k=[tiles, small]: list(self.get(g, k)))
            handles.append((_Part(future, None, 0), _Part(future, None, 1)))
        return handles

    def node(self, fn: Callable[..., Any], args: tuple, kids: list[_Part]) -> tuple[_Part, _Part]:
        # a node waits for its children: level-0 blocks on the other pool, or nodes queued
        # before it on this FIFO one; neither waits for it, so this cannot deadlock
        def run() -> list[Any]:
            return list(fn(*args, *[kid.get() for kid in kids]))

        future = self.node_pool.submit(run)
        return _Part(future, None, 0), _Part(future, None, 1)

    def result(self, handle: _Part) -> list[Any]:
        return handle.get()

    def cancel(self, handles: list[Any]) -> None:
        pass  # the pools' shutdown cancels what is queued
