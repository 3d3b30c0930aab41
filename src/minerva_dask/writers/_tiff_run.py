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
scheduler's size, one block per thread. Who runs them is the ``runner``'s stage executor
(:class:`~._runner.StageExecutor`, made by :mod:`minerva_dask.compute`); its work is
stopped (queued work cancelled, running work finished) before the caller cleans up.
"""

from __future__ import annotations

import contextlib
import math
import operator
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ._runner import Runner, StageExecutor
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
    runner: Runner,
    prefetch: int = 2,
) -> None:
    """Compute every tile of the pyramid and hand each to ``write``, in a fixed order.

    ``data``: the level-0 dask array, ``(y, x, 3)`` or ``(c, y, x)`` on the block grid."""
    fan = fan_out(spec)
    bases = spec.stage_levels()
    top = len(bases) - 1  # its blocks leave nothing for a parent
    blocks = _Blocks(data, spec)
    with contextlib.ExitStack() as stack:
        # on a cluster whole groups, one submission each; locally one block per thread
        stages = runner.stage_executor(stack)
        batch, window = stages.sizes(fan, prefetch)
        held: dict[tuple[int, int, int], Any] = {}  # small blocks waiting for their parent
        pending: deque[tuple[Any, int]] = deque()
        # on the way out: stop what is queued (a failed export leaves no work behind)
        stack.callback(lambda: stages.cancel([h for h, _ in pending] + list(held.values())))
        in_flight = 0
        for job in plan(spec):
            if isinstance(job, _Leaves):
                for start in range(0, len(job.cells), batch):
                    cells = job.cells[start : start + batch]
                    for cell, (tiles, small) in zip(
                        cells, stages.leaves(blocks, cells), strict=True
                    ):
                        if top:
                            held[(0, *cell)] = small
                        pending.append((tiles, 1))
                    in_flight += len(cells)
                    while in_flight > window:
                        in_flight -= _drain(stages, pending, write)
            else:
                kids = [held.pop((job.stage - 1, *kid)) for kid in job.children]
                args = (spec, bases[job.stage], job.row, job.col, job.columns)
                tiles, small = stages.node(encode_node, args, kids)
                if job.stage < top:
                    held[(job.stage, job.row, job.col)] = small
                pending.append((tiles, 1))
                in_flight += 1
            while in_flight > window:
                in_flight -= _drain(stages, pending, write)
        while pending:
            _drain(stages, pending, write)


def _drain(
    stages: StageExecutor, pending: deque[tuple[Any, int]], write: Callable[[Tile], None]
) -> int:
    handle, weight = pending.popleft()
    for tile in stages.result(handle):
        write(tile)
    return weight


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
