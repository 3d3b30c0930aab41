"""A rendering's row blocks, computed here: a few rows of chunks at a time, in order.

On the threaded scheduler a :class:`~minerva_dask.Rendering`'s chunk tasks run on dask's
threaded scheduler, or, where dask was never loaded, on a thread pool without importing
dask (a small PNG crop's fast path); on a client, two jobs in flight. Writers receive the
row blocks; they never see how they were made.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from ..writers._progress import Progress
from ._context import compute_options, uses_threaded_scheduler
from ._order import compute_in_order

__all__ = ["array_row_blocks", "row_blocks"]


def row_blocks(
    image: Any, client: Any, compute_kwargs: dict[str, Any], progress: bool
) -> Iterator[np.ndarray]:
    """A :class:`~minerva_dask.Rendering` as numpy row blocks ``(y, x, 3)``, top to bottom,
    computed a few rows of chunks at a time (enough chunks to keep every thread busy, or
    every tile a network source wants in flight) while the consumer (the PNG encoder)
    works on the rows before. ``client``: a ``distributed.Client`` or ``None``."""
    rows, columns = len(image.chunks[0]), len(image.chunks[1])
    report = Progress(rows * columns, "PNG", enabled=progress)
    options = compute_options(getattr(image, "source", None), compute_kwargs)
    if client is not None:
        threads = sum(client.nthreads().values())
    else:
        threads = options.get("num_workers") or os.cpu_count() or 1
    step = max(1, -(-threads // columns))  # rows of chunks per job
    starts = range(0, rows, step)
    with contextlib.ExitStack() as stack:
        if client is None and hasattr(image, "chunk_task") and uses_threaded_scheduler(options):
            chunks_of = _local_chunk_runner(image, threads, stack)
            jobs: Iterator[Any] = (range(start, min(start + step, rows)) for start in starts)

            def compute(job: range) -> np.ndarray:
                blocks = iter(chunks_of([(row, col) for row in job for col in range(columns)]))
                return _joined([_joined([next(blocks) for _ in range(columns)], 1) for _ in job], 0)

        else:
            data = getattr(image, "data", image)
            jobs = (data.blocks[start : start + step] for start in starts)

            def compute(job: Any) -> np.ndarray:
                return job.compute(**options)

        # Locally one job at a time (it takes every thread; the encoder's threads overlap
        # it); a cluster gets two in flight.
        prefetch = 1 if client is None else 2
        blocks = compute_in_order(jobs, client=client, prefetch=prefetch, compute=compute)
        for start, block in zip(starts, blocks, strict=True):
            report.advance(columns * (min(start + step, rows) - start))
            yield block


def _joined(blocks: list[np.ndarray], axis: int) -> np.ndarray:
    """``blocks`` concatenated along ``axis``; a single block as it is (no copy)."""
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=axis)


def _local_chunk_runner(
    image: Any, threads: int, stack: contextlib.ExitStack
) -> Callable[[list[tuple[int, int]]], list[np.ndarray]]:
    """How a Rendering's chunks ``[(row, col), ...]`` are computed here, in that order.

    Its chunk tasks stand alone. With dask loaded they run on dask's threaded scheduler,
    so its callbacks and settings apply; where dask was never loaded nothing can have
    configured it, and a thread pool of ``threads`` runs them without importing dask
    (0.1-0.15 s of a small crop's whole run).
    """
    if "dask" in sys.modules:
        import dask.threaded

        def on_dask(ids: list[tuple[int, int]]) -> list[np.ndarray]:
            keys = [(image.name, row, col, 0) for row, col in ids]
            graph = {key: image.graph[key] for key in keys}
            return dask.threaded.get(graph, keys, num_workers=threads)

        return on_dask
    pool = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix="chunk"))
    reads = stack.enter_context(ThreadPoolExecutor(threads, thread_name_prefix="chunk-read"))

    def on_pool(ids: list[tuple[int, int]]) -> list[np.ndarray]:
        # with threads to spare, each chunk keeps its share of them reading channels ahead
        ahead = threads // len(ids) if len(ids) < threads else 0

        def one(id_: tuple[int, int]) -> np.ndarray:
            return image.compute_chunk(*id_, reads=reads if ahead else None, ahead=ahead)

        return list(pool.map(one, ids))

    return on_pool


def array_row_blocks(
    image: Any, client: Any, compute_kwargs: dict[str, Any], progress: bool
) -> Iterator[np.ndarray]:
    """A dask array ``(y, x, ...)`` as numpy row blocks, top to bottom: one row of chunks
    at a time, in order, two in flight. ``client``: a ``distributed.Client`` or ``None``."""
    rows = len(image.chunks[0])
    report = Progress(rows * len(image.chunks[1]), "PNG", enabled=progress)
    jobs = (image.blocks[row : row + 1] for row in range(rows))
    blocks = compute_in_order(
        jobs, client=client, prefetch=2, compute=lambda job: job.compute(**compute_kwargs)
    )
    for block in blocks:
        report.advance(len(image.chunks[1]))
        yield block
