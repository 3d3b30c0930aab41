"""The tasks that write an OME-Zarr: one per stored unit, each unit written whole.

A unit is one stored object: a chunk of an unsharded array, or a whole shard (``shard x
shard`` chunks) of a sharded one. Exactly one task writes each unit, in one write, so
workers write in parallel without locks and a shard is never read back and rewritten.
After its data, each task leaves a small completion marker
(``.minerva-dask/{level}/{row}.{col}``, holding a token of the render), which ``resume``
trusts. Level 0's tasks take the rendered blocks of their unit; a lower level's task
reads the level above from the store, a chunk's 2 x 2 neighbourhood at a time (so a
task holds one unit and one small piece, never the level), and stores the 2 x 2 means.
Pixels are ``(y, x, c)`` blocks of any channel count and dtype; the store is ``(c, y, x)``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .._paths import is_url
from ._pyramid import downsample_2x
from ._store import store_fs

__all__ = [
    "MARKERS",
    "Target",
    "done_markers",
    "level_jobs",
    "unit_tiles",
    "units",
]

MARKERS = ".minerva-dask"


@dataclass(frozen=True, slots=True)
class Target:
    """Where a task writes: the store's ``url`` and its fsspec options (as sorted JSON),
    the zarr format, the export's ``token``, the chunk ``side`` and the ``unit`` side
    (``side`` times the chunks per shard side; ``side`` when unsharded)."""

    url: str
    options_key: str
    zarr_format: int
    token: str
    side: int
    unit: int


@lru_cache(maxsize=64)
def _open_level(url: str, options_key: str, level: int, zarr_format: int, token: str) -> Any:
    """The zarr array of ``level``, opened once per process and export (``token``: an
    array cached for another export at the same path may have another shape)."""
    import zarr

    options = json.loads(options_key) or None
    return zarr.open_array(
        url,
        path=str(level),
        mode="r+",
        zarr_format=zarr_format,
        storage_options=options if is_url(url) else None,
    )


def _array(target: Target, level: int) -> Any:
    return _open_level(target.url, target.options_key, level, target.zarr_format, target.token)


def _mark(target: Target, level: int, row: int, col: int) -> None:
    fs, root = store_fs(target.url, json.loads(target.options_key))
    fs.pipe_file(f"{root}/{MARKERS}/{level}/{row}.{col}", f"{target.token}:{level}".encode())


def units(length: int, unit: int) -> int:
    return max(1, math.ceil(length / unit))


def unit_tiles(shape: tuple[int, int], target: Target, row: int, col: int) -> int:
    """How many chunks (tiles) unit ``(row, col)`` of a level of ``shape`` holds."""
    height = min(target.unit, shape[0] - row * target.unit)
    width = min(target.unit, shape[1] - col * target.unit)
    return math.ceil(height / target.side) * math.ceil(width / target.side)


def write_blocks(blocks: list[list[np.ndarray]], target: Target, row: int, col: int) -> int:
    """Store the rendered ``(y, x, c)`` blocks of level 0's unit ``(row, col)`` (rows of
    blocks, left to right), in one write; then its marker. Returns the tiles written."""
    array = _array(target, 0)
    if len(blocks) == 1 and len(blocks[0]) == 1:
        pixels = np.moveaxis(blocks[0][0], 2, 0)
    else:
        height = sum(line[0].shape[0] for line in blocks)
        width = sum(block.shape[1] for block in blocks[0])
        pixels = np.empty((blocks[0][0].shape[2], height, width), blocks[0][0].dtype)
        y = 0
        for line in blocks:
            x = 0
            for block in line:
                pixels[:, y : y + block.shape[0], x : x + block.shape[1]] = np.moveaxis(block, 2, 0)
                x += block.shape[1]
            y += line[0].shape[0]
    y0, x0 = row * target.unit, col * target.unit
    array[:, y0 : y0 + pixels.shape[1], x0 : x0 + pixels.shape[2]] = pixels
    _mark(target, 0, row, col)
    return math.ceil(pixels.shape[1] / target.side) * math.ceil(pixels.shape[2] / target.side)


def write_downsampled(target: Target, level: int, row: int, col: int) -> int:
    """Store unit ``(row, col)`` of ``level`` (>= 1): the 2 x 2 means of the level above,
    read from the store one chunk's neighbourhood at a time; then its marker."""
    above, array = _array(target, level - 1), _array(target, level)
    _, height, width = array.shape
    y0, x0 = row * target.unit, col * target.unit
    y1, x1 = min(y0 + target.unit, height), min(x0 + target.unit, width)
    pixels = np.empty((array.shape[0], y1 - y0, x1 - x0), array.dtype)
    step = target.side
    for ys in range(y0, y1, step):
        ye = min(ys + step, y1)
        for xs in range(x0, x1, step):
            xe = min(xs + step, x1)
            piece = above[:, 2 * ys : 2 * ye, 2 * xs : 2 * xe]  # clipped at the level's edge
            means = downsample_2x(np.moveaxis(piece, 0, 2))
            pixels[:, ys - y0 : ye - y0, xs - x0 : xe - x0] = np.moveaxis(means, 2, 0)
    array[:, y0:y1, x0:x1] = pixels
    _mark(target, level, row, col)
    return math.ceil((y1 - y0) / step) * math.ceil((x1 - x0) / step)


def done_markers(fs: Any, root: str, level: int, token: str) -> set[tuple[int, int]]:
    """The units of ``level`` whose marker says this export (``token``) wrote them."""
    folder = f"{root}/{MARKERS}/{level}"
    try:
        names = fs.find(folder)
    except FileNotFoundError:
        return set()
    if not names:
        return set()
    done = set()
    for name, body in fs.cat(names, on_error="omit").items():
        if body == f"{token}:{level}".encode():
            row, col = os.path.basename(name).split(".")
            done.add((int(row), int(col)))
    return done


def level_jobs(
    data: Any, target: Target, level: int, shape: tuple[int, int], done: set[tuple[int, int]]
) -> list[list[Any]]:
    """One job per row of units: delayed writes of the units not yet ``done``. Level 0
    writes ``data``'s blocks (a dask ``(y, x, c)`` array on the chunk grid); lower levels
    read the level above from the store."""
    import dask

    rows, cols = units(shape[0], target.unit), units(shape[1], target.unit)
    per = target.unit // target.side  # blocks per unit side
    if level == 0:
        blocks = data.to_delayed(optimize_graph=True)
        write = dask.delayed(write_blocks, pure=False)

        def task(row: int, col: int) -> Any:
            grid = [
                [blocks[r, c, 0] for c in range(col * per, min((col + 1) * per, blocks.shape[1]))]
                for r in range(row * per, min((row + 1) * per, blocks.shape[0]))
            ]
            return write(grid, target, row, col)

    else:
        down = dask.delayed(write_downsampled, pure=False)

        def task(row: int, col: int) -> Any:
            return down(target, level, row, col)

    jobs = []
    for row in range(rows):
        job = [task(row, col) for col in range(cols) if (row, col) not in done]
        if job:
            jobs.append(job)
    return jobs
