"""What a writer asks of whoever runs its tasks: typing only, no implementation.

Writers build dask collections (writes, tile encodings, stage tasks) and hand them to a
:class:`Runner`; they never pick a scheduler, a pool or a client. The implementations,
local (threads) and distributed (a ``distributed.Client``), live in
:mod:`minerva_dask.compute`, which the public exports (:mod:`minerva_dask.exports`) use to
make one (``compute.make_runner``) and pass in.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

__all__ = ["Runner", "StageBlocks", "StageExecutor"]


class StageBlocks(Protocol):
    """The level-0 blocks of a staged export (the TIFF writer's ``_Blocks``)."""

    shared: bool
    """Whether blocks share tasks (a rechunked image): then they must run together."""

    def tasks(self, cells: list[tuple[int, int]]) -> tuple[dict, list[tuple[Any, Any]]]:
        """The graph of ``cells`` and, per cell, the keys of its tiles and small block."""
        ...


class StageExecutor(Protocol):
    """Runs the stage tasks of a pyramid (:mod:`minerva_dask.writers._tiff_run`).

    Handles are opaque: a tiles handle is given to :meth:`result` once, a small-block
    handle to :meth:`node` once. Everything queued is stopped when the ``stack`` the
    executor was made with closes (locally: its pools shut down, running tasks finished,
    queued ones cancelled) or when :meth:`cancel` is called (on a cluster).
    """

    threads: int

    def sizes(self, fan: int, prefetch: int) -> tuple[int, int]:
        """``(batch, window)``: level-0 blocks per submission, and blocks in flight at most."""
        ...

    def leaves(self, blocks: StageBlocks, cells: list[tuple[int, int]]) -> list[tuple[Any, Any]]:
        """Start the level-0 blocks ``cells``: per cell, handles of its tiles and small block."""
        ...

    def node(self, fn: Callable[..., Any], args: tuple, kids: list[Any]) -> tuple[Any, Any]:
        """Start ``fn(*args, *children's small blocks)`` (returning ``(tiles, small)``) once
        its children are done: handles of its tiles and small block."""
        ...

    def result(self, handle: Any) -> list[Any]:
        """The tiles behind ``handle``, waited for (an error of its task raised here)."""
        ...

    def cancel(self, handles: list[Any]) -> None:
        """Stop the tasks behind ``handles``, and release their results (best effort);
        on a cluster, every other task of this executor still held as well: called on the
        writer's way out, it leaves nothing of the export on the cluster."""
        ...


class Runner(Protocol):
    """Runs a writer's dask work: on this machine's threads or on a dask cluster.

    Every method computes what it is given and nothing else; results come back here only
    where a method says so. On a cluster, tasks get two retries for transient failures.
    """

    distributed: bool
    """Whether tasks run on a cluster's workers (they must see the output's files)."""

    threads: int
    """Threads that run tasks: this process's (``num_workers`` or one per core), or the
    cluster's, all workers together."""

    renders_here: bool
    """Whether this process renders the pixels itself (so its allocator serves the render
    buffers: the TIFF writer then keeps freed memory for reuse)."""

    def in_order(self, jobs: Iterable[Any], *, prefetch: int, name: str = "bands") -> Iterator[Any]:
        """Compute each job (a dask collection, or a list of them) and yield the results in
        order, with at most ``prefetch`` jobs in flight.

        Locally the tasks run on a pool of ``threads`` threads that is shut down (running
        tasks finished, queued ones cancelled) when the iterator fails or is closed: close
        it (``contextlib.closing``) before cleaning up after a failure, and no task runs
        after that. Another scheduler named by the user runs them instead."""
        ...

    def compute_all(self, tasks: list[Any], *, name: str = "tasks") -> list[Any]:
        """Compute ``tasks`` (dask delayed objects) together; their results, in order.

        Locally on a pool of our own that is joined before this returns or raises (no task
        of them runs afterwards), unless the user named another scheduler or pool."""
        ...

    def persist(self, collection: Any) -> Any:
        """``collection`` computed and kept (on the workers, or here), still a collection."""
        ...

    def stage_executor(self, stack: contextlib.ExitStack) -> StageExecutor:
        """An executor of pyramid stage tasks, stopped when ``stack`` closes."""
        ...
