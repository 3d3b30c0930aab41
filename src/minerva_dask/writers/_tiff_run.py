"""Who runs the stage tasks of a pyramidal TIFF, in what order, how many at once.

Tasks are visited depth first: the level-0 blocks under one block of the next stage, then
that block, then its siblings, up to the top (a quadtree of ``2**k``-a-side fan-out). A
small block left by a task is held (on a worker, or in this process for the threaded
scheduler) only until its parent is submitted, so at most ``fan-out**2`` of them wait per
stage; compressed tiles are fetched, and written, in submission order, with a bounded
number of blocks in flight. Neither depends on the slide's width or height.

A level-0 block is its own small task graph: the block's tasks, culled from the image's
graph, and the task that encodes it. On a ``distributed.Client`` a group of them is one
submission whose tile bytes alone come back; the small blocks stay on the workers and go
to their parent task there. Locally each block runs on one thread of a pool of the
scheduler's size (``num_workers``), as the threaded scheduler would run it, but one block
per thread: never more blocks rendering than threads, whatever order dask would pick. The
pools are shut down (queued work cancelled, running work finished) before the caller
cleans up. A ``scheduler`` in ``compute_kwargs`` other than threads runs the blocks.
"""

from __future__ import annotations

import contextlib
import math
import operator
import os
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ._tiff_encode import Tile, TileSpec, encode_leaf, encode_node, fan_out

__all__ = ["run_stages"]


@dataclass(frozen=True)
class _Leaves:
    cells: list[tuple[int, int]]


@dataclass(frozen=True)
class _Node:
    stage: int
    row: int
    col: int
    children: list[tuple[int, int]]
    columns: int


def plan(spec: TileSpec) -> Iterator[_Leaves | _Node]:
    """Every task group, children before parents, depth first."""
    bases = spec.stage_levels()
    fan = fan_out(spec)
    top = len(bases) - 1
    rows, cols = spec.grid(bases[top])

    def visit(stage: int, row: int, col: int) -> Iterator[_Leaves | _Node]:
        below_rows, below_cols = spec.grid(bases[stage - 1])
        r_end, c_end = min(fan * row + fan, below_rows), min(fan * col + fan, below_cols)
        kids = [(r, c) for r in range(fan * row, r_end) for c in range(fan * col, c_end)]
        if stage == 1:
            yield _Leaves(kids)
        else:
            for kid in kids:
                yield from visit(stage - 1, *kid)
        yield _Node(stage, row, col, kids, c_end - fan * col)

    if top == 0:  # one stage: groups of level-0 blocks along each row
        for row in range(rows):
            for start in range(0, cols, fan * fan):
                yield _Leaves([(row, c) for c in range(start, min(start + fan * fan, cols))])
        return
    for row in range(rows):
        for col in range(cols):
            yield from visit(top, row, col)


def run_stages(
    spec: TileSpec,
    data: Any,
    write: Callable[[Tile], None],
    *,
    client: Any = None,
    compute_kwargs: dict[str, Any] | None = None,
    prefetch: int = 2,
) -> None:
    """Compute every tile of the pyramid and hand each to ``write``, in a fixed order.

    ``data``: the level-0 dask array, ``(y, x, 3)`` or ``(c, y, x)`` on the block grid."""
    fan = fan_out(spec)
    bases = spec.stage_levels()
    top = len(bases) - 1  # its blocks leave nothing for a parent
    blocks = _Blocks(data, spec)
    with contextlib.ExitStack() as stack:
        if client is not None:  # whole groups, one submission each
            runner: Any = _Distributed(client)
            batch = fan * fan
            window = max(prefetch * fan * fan, 4 * sum(client.nthreads().values()))
        else:  # one block per thread, as many waiting: this process holds the window
            runner = _Local(compute_kwargs or {}, stack)
            batch = runner.threads
            window = 2 * batch
        held: dict[tuple[int, int, int], Any] = {}  # small blocks waiting for their parent
        pending: deque[tuple[Any, int]] = deque()
        # on the way out: stop what is queued (a failed export leaves no work behind)
        stack.callback(lambda: runner.cancel([h for h, _ in pending] + list(held.values())))
        in_flight = 0
        for job in plan(spec):
            if isinstance(job, _Leaves):
                for start in range(0, len(job.cells), batch):
                    cells = job.cells[start : start + batch]
                    for cell, (tiles, small) in zip(
                        cells, runner.leaves(blocks, cells), strict=True
                    ):
                        if top:
                            held[(0, *cell)] = small
                        pending.append((tiles, 1))
                    in_flight += len(cells)
                    while in_flight > window:
                        in_flight -= _drain(runner, pending, write)
            else:
                kids = [held.pop((job.stage - 1, *kid)) for kid in job.children]
                args = (spec, bases[job.stage], job.row, job.col, job.columns)
                tiles, small = runner.node(args, kids)
                if job.stage < top:
                    held[(job.stage, job.row, job.col)] = small
                pending.append((tiles, 1))
                in_flight += 1
            while in_flight > window:
                in_flight -= _drain(runner, pending, write)
        while pending:
            _drain(runner, pending, write)


def _drain(runner: Any, pending: deque[tuple[Any, int]], write: Callable[[Tile], None]) -> int:
    handle, weight = pending.popleft()
    for tile in runner.result(handle):
        write(tile)
    return weight


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


class _Blocks:
    """Level-0 blocks as small graphs: each block's own tasks (culled from the image's
    graph, materialised once) and its encoding, keyed uniquely for this export."""

    def __init__(self, data: Any, spec: TileSpec) -> None:
        self.graph = dict(data.__dask_graph__())
        self.name, self.spec = data.name, spec
        # more tasks than blocks (a rechunked image): blocks may share tasks, run together
        self.shared = len(self.graph) > math.prod(len(axis) for axis in data.chunks)
        self.prefix = f"ome-tiff-{uuid.uuid4().hex}"

    def key(self, row: int, col: int) -> tuple:
        return (self.name, 0, row, col) if self.spec.layout == "cyx" else (self.name, row, col, 0)

    def tasks(self, cells: list[tuple[int, int]]) -> tuple[dict, list[tuple[Any, Any]]]:
        """The graph of ``cells`` and, per cell, the keys of its tiles and small block."""
        from dask.optimization import cull

        keys = [self.key(*cell) for cell in cells]
        graph, _ = cull(self.graph, keys)
        out = []
        for (row, col), key in zip(cells, keys, strict=True):
            both = (f"{self.prefix}-leaf", row, col)
            tiles, small = (f"{self.prefix}-tiles", row, col), (f"{self.prefix}-small", row, col)
            graph[both] = (encode_leaf, key, self.spec, row, col)
            graph[tiles] = (operator.getitem, both, 0)
            graph[small] = (operator.getitem, both, 1)
            out.append((tiles, small))
        return graph, out


class _Local:
    """Level-0 blocks one per thread on a pool of the scheduler's size; the stages above on
    a thread of their own, overlapping them."""

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

    def leaves(self, blocks: _Blocks, cells: list[tuple[int, int]]) -> list[tuple[_Part, _Part]]:
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

    def node(self, args: tuple, kids: list[_Part]) -> tuple[_Part, _Part]:
        # a node waits for its children: level-0 blocks on the other pool, or nodes queued
        # before it on this FIFO one; neither waits for it, so this cannot deadlock
        def run() -> list[Any]:
            return list(encode_node(*args, *[kid.get() for kid in kids]))

        future = self.node_pool.submit(run)
        return _Part(future, None, 0), _Part(future, None, 1)

    def result(self, handle: _Part) -> list[Tile]:
        return handle.get()

    def cancel(self, handles: list[Any]) -> None:
        pass  # the pools' shutdown cancels what is queued


class _Distributed:
    def __init__(self, client: Any) -> None:
        self.client = client

    def leaves(self, blocks: _Blocks, cells: list[tuple[int, int]]) -> list[tuple[Any, Any]]:
        graph, keys = blocks.tasks(cells)
        flat = [key for pair in keys for key in pair]
        futures = self.client.get(graph, flat, sync=False, retries=2)
        return list(zip(futures[0::2], futures[1::2], strict=True))

    def node(self, args: tuple, kids: list[Any]) -> tuple[Any, Any]:
        both = self.client.submit(encode_node, *args, *kids, pure=False, retries=2)
        tiles = self.client.submit(operator.getitem, both, 0, pure=False)
        small = self.client.submit(operator.getitem, both, 1, pure=False)
        return tiles, small

    def result(self, handle: Any) -> list[Tile]:
        return handle.result()

    def cancel(self, handles: list[Any]) -> None:
        live = [f for f in handles if f is not None and not f.done()]
        if live:
            self.client.cancel(live)
