"""A writer's work on a ``distributed.Client``: every task on the cluster, two retries."""

from __future__ import annotations

import contextlib
import operator
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ._order import compute_in_order, release

__all__ = ["DistributedRunner", "DistributedStages"]

RETRIES = 2  # a task's retries on the cluster (a worker lost, a transient read error)


class DistributedRunner:
    """:class:`~minerva_dask.writers._runner.Runner` on a ``distributed.Client``."""

    distributed = True
    renders_here = False

    def __init__(self, client: Any) -> None:
        self.client = client
        self._persisted: weakref.WeakSet[Any] = weakref.WeakSet()  # held by the writer

    @property
    def threads(self) -> int:
        return sum(self.client.nthreads().values())

    def in_order(self, jobs: Iterable[Any], *, prefetch: int, name: str = "bands") -> Iterator[Any]:
        return compute_in_order(jobs, client=self.client, prefetch=prefetch, retries=RETRIES)

    def compute_all(self, tasks: list[Any], *, name: str = "tasks") -> list[Any]:
        futures = self.client.compute(tasks, retries=RETRIES)
        try:
            return list(self.client.gather(futures))
        except BaseException:  # nothing of this export left on the cluster
            release([futures, list(self._persisted)])
            raise

    def persist(self, collection: Any) -> Any:
        from distributed import futures_of

        persisted = self.client.persist(collection)
        self._persisted.update(futures_of(persisted))
        return persisted

    def stage_executor(self, stack: contextlib.ExitStack) -> DistributedStages:
        return DistributedStages(self.client)


class DistributedStages:
    """Stage tasks on the cluster: a group of level-0 blocks is one submission whose tile
    bytes alone come back; the small blocks stay on the workers for their parent task."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.threads = sum(client.nthreads().values())
        self._made: weakref.WeakSet[Any] = weakref.WeakSet()  # live futures of this export
        self._failed = False

    def sizes(self, fan: int, prefetch: int) -> tuple[int, int]:
        return fan * fan, max(prefetch * fan * fan, 4 * self.threads)

    def leaves(self, blocks: Any, cells: list[tuple[int, int]]) -> list[tuple[Any, Any]]:
        graph, keys = blocks.tasks(cells)
        flat = [key for pair in keys for key in pair]
        futures = self.client.get(graph, flat, sync=False, retries=RETRIES)
        self._made.update(futures)
        return list(zip(futures[0::2], futures[1::2], strict=True))

    def node(self, fn: Callable[..., Any], args: tuple, kids: list[Any]) -> tuple[Any, Any]:
        both = self.client.submit(fn, *args, *kids, pure=False, retries=RETRIES)
        tiles = self.client.submit(operator.getitem, both, 0, pure=False)
        small = self.client.submit(operator.getitem, both, 1, pure=False)
        self._made.update((both, tiles, small))
        return tiles, small

    def result(self, handle: Any) -> list[Any]:
        try:
            return handle.result()
        except BaseException:
            self._failed = True  # cancel(), on the writer's way out, releases it all
            raise

    def cancel(self, handles: list[Any]) -> None:
        """On the writer's way out: after a failure or a stop (a task failed, or work
        was left in flight), release ``handles`` and every other future of this export
        still alive (a failed one's traceback holds some, e.g. a node's children): the
        scheduler stops and forgets what nothing wants. After a complete export there is
        nothing to release, and nothing is sent."""
        if self._failed or handles:
            release([*handles, *self._made])
