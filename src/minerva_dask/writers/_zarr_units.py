"""The tasks that write an OME-Zarr: one per stored unit, each unit written whole.

A unit is one stored object: a chunk of an unsharded array, or a whole shard (``shard x
shard`` chunks) of a sharded one. Exactly one task writes each unit, in one write, so
workers write in parallel without locks and a shard is never read back and rewritten.
After its data, each task leaves a small completion marker
(``.minerva-dask/{level}/{row}.{col}``, holding a token of the render), which ``resume``
trusts. At level 0 an unsharded chunk's task takes its rendered block; a shard's task
takes its chunks already encoded, each by a small task right after its block is
rendered (:mod:`._shard_codec`), so the rendered pixels are dropped at once. A lower
level's task reads the level above from the store, a chunk's 2 x 2 neighbourhood at a
time, encoding each chunk of means as it is made (so a task holds one small piece and
compressed bytes, never a level or a shard of pixels). Pixels are ``(y, x, c)`` blocks
of any channel count and dtype; the store is ``(c, y, x)``.
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
from ._meta import check_block
from ._pyramid import downsample_2x
from ._shard_codec import encode_chunk, shard_bytes
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


def _put_shard(target: Target, level: int, row: int, col: int, chunks: dict) -> None:
    fs, root = store_fs(target.url, json.loads(target.options_key))
    fs.pipe_file(f"{root}/{level}/c/0/{row}/{col}", shard_bytes(chunks, target.unit // target.side))


def encode_block(block: np.ndarray, side: int, where: str, want: tuple[tuple, str]) -> bytes:
    """A rendered ``(y, x, c)`` block of one chunk, checked against what its array
    declared (``want``: shape, dtype), encoded as the chunk is stored."""
    return encode_chunk(np.moveaxis(check_block(block, where, *want), 2, 0), side)


def write_shard(encoded: list[list[bytes]], target: Target, row: int, col: int) -> int:
    """Store level 0's shard ``(row, col)`` from its chunks' encoded bytes (rows of
    chunks, left to right), in one write; then its marker. Returns the tiles written."""
    chunks = {(r, c): data for r, line in enumerate(encoded) for c, data in enumerate(line)}
    _put_shard(target, 0, row, col, chunks)
    _mark(target, 0, row, col)
    return len(chunks)


def write_block(
    block: np.ndarray, target: Target, row: int, col: int, want: tuple[tuple, str]
) -> int:
    """Store level 0's chunk ``(row, col)`` of an unsharded array, checked against what
    its array declared (``want``: shape, dtype); then its marker."""
    block = check_block(block, f"block ({row}, {col})", *want)
    y0, x0 = row * target.unit, col * target.unit
    _array(target, 0)[:, y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = np.moveaxis(
        block, 2, 0
    )
    _mark(target, 0, row, col)
    return 1


def write_downsampled(target: Target, level: int, row: int, col: int) -> int:
    """Store unit ``(row, col)`` of ``level`` (>= 1): the 2 x 2 means of the level above,
    read from the store one chunk's neighbourhood at a time (a shard's chunks encoded as
    they are made); then its marker. Returns the tiles written."""
    above, array = _array(target, level - 1), _array(target, level)
    _, height, width = array.shape
    y0, x0 = row * target.unit, col * target.unit
    y1, x1 = min(y0 + target.unit, height), min(x0 + target.unit, width)
    step = target.side
    chunks: dict[tuple[int, int], bytes] = {}
    for ys in range(y0, y1, step):
        ye = min(ys + step, y1)
        for xs in range(x0, x1, step):
            xe = min(xs + step, x1)
            piece = above[:, 2 * ys : 2 * ye, 2 * xs : 2 * xe]  # clipped at the level's edge
            means = np.moveaxis(downsample_2x(np.moveaxis(piece, 0, 2)), 2, 0)
            if target.unit == step:  # unsharded: the unit is this one chunk
                array[:, ys:ye, xs:xe] = means
            else:
                chunks[(ys - y0) // step, (xs - x0) // step] = encode_chunk(means, step)
    if chunks:
        _put_shard(target, level, row, col, chunks)
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

    def want(row: int, col: int) -> tuple[tuple, str]:  # what the block must compute
        return (data.chunks[0][row], data.chunks[1][col], data.shape[2]), data.dtype.str

    if level == 0 and per == 1:
        blocks = data.to_delayed(optimize_graph=True)
        write = dask.delayed(write_block, pure=False)

        def task(row: int, col: int) -> Any:
            return write(blocks[row, col, 0], target, row, col, want(row, col))

    elif level == 0:  # each chunk encoded as soon as it is rendered, then its shard put
        blocks = data.to_delayed(optimize_graph=True)
        encode = dask.delayed(encode_block, pure=True)
        put = dask.delayed(write_shard, pure=False)

        def task(row: int, col: int) -> Any:
            grid = [
                [
                    encode(blocks[r, c, 0], target.side, f"block ({r}, {c})", want(r, c))
                    for c in range(col * per, min((col + 1) * per, blocks.shape[1]))
                ]
                for r in range(row * per, min((row + 1) * per, blocks.shape[0]))
            ]
            return put(grid, target, row, col)

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
