"""Deep Zoom geometry and the work of one task: a block of a level, cut into tiles.

Deep Zoom's levels: level ``N = ceil(log2(max(width, height)))`` is the full image, and
level ``l`` is ``ceil(width / 2**(N - l)) x ceil(height / 2**(N - l))``, down to level 0,
1 x 1. Tile ``(col, row)`` of a level covers ``[col * size - overlap, (col + 1) * size +
overlap)`` across, and the same down, clipped to the level: neighbouring tiles share
``2 * overlap`` pixels. Tiles are named ``{level}/{col}_{row}.{jpeg|png}``, as pyvips'
``dzsave`` names them.

One task takes a block of ``side = size * 2**steps`` pixels of a level (``steps`` >= 1),
plus ``overlap * 2**steps`` pixels of its neighbours on every side (clipped to the
level), and writes the tiles of that block at ``steps`` levels: the level, then each 2 x 2
mean of the one before (:func:`._pyramid.downsample_2x`: odd edges repeated, means rounded
half up). The block and its margin start on multiples of ``2**steps``, so its means are
exactly those of the whole level (a mean never mixes pixels of two blocks, and an odd
edge is the level's own). The level below those is the next stage's input: the task
saves its part of it (no margin) losslessly, as ``.npy``, beside its completion marker.
A level that fits in one block is written down to 1 x 1 by one task.
"""

from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass

import numpy as np

from ._pyramid import downsample_2x

__all__ = ["BlockJob", "dz_shapes", "encode_tile", "load_carry", "tile_block"]

SUFFIX = {"jpeg": "jpeg", "png": "png"}


def dz_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """``(height, width)`` of every Deep Zoom level, level 0 (1 x 1) first.

    >>> dz_shapes(601, 1003)[-2:], len(dz_shapes(601, 1003)), dz_shapes(1, 1)
    ([(301, 502), (601, 1003)], 11, [(1, 1)])
    """
    top = math.ceil(math.log2(max(height, width, 1)))
    return [
        (-(-height // 2 ** (top - level)), -(-width // 2 ** (top - level)))
        for level in range(top + 1)
    ]


def encode_tile(tile: np.ndarray, fmt: str, quality: int) -> bytes:
    """A tile's file: JPEG at ``quality`` (as pyvips' ``Q``; 4:2:0 chroma, as libjpeg's
    default) or PNG (zlib level 6, as dzsave's default)."""
    import imagecodecs

    tile = np.ascontiguousarray(tile)
    if fmt == "jpeg":
        return bytes(imagecodecs.jpeg8_encode(tile, level=quality))
    return bytes(imagecodecs.png_encode(tile, level=6))


@dataclass(frozen=True, slots=True)
class BlockJob:
    """One task. ``files``: the pyramid's ``NAME_files`` folder; ``level``: the DZ level
    of the block; ``write``: how many levels to write from it (the level and those below);
    ``core``: the block's ``(y0, x0, y1, x1)`` at ``level``; ``origin``: where the padded
    block given to the task starts, ``(y, x)``; ``shapes``: every level's shape;
    ``carry``: where to save the level below the last one written (``None``: none);
    ``marker``: the completion marker's path, holding ``token``."""

    files: str
    level: int
    write: int
    core: tuple[int, int, int, int]
    origin: tuple[int, int]
    shapes: tuple[tuple[int, int], ...]
    tile_size: int
    overlap: int
    fmt: str
    quality: int
    carry: str | None
    marker: str
    token: str


def _span(index: int, size: int, overlap: int, length: int) -> tuple[int, int]:
    return max(0, index * size - overlap), min(length, (index + 1) * size + overlap)


def tile_block(padded: np.ndarray, job: BlockJob) -> int:
    """Write the tiles of ``job`` from ``padded`` (its block with margins), then the carry
    and the marker; the number of tiles written."""
    oy, ox = job.origin
    y0, x0, y1, x1 = job.core
    size, overlap = job.tile_size, job.overlap
    arr = padded
    written = 0
    for step in range(job.write):
        level = job.level - step
        height, width = job.shapes[level]
        if step:
            if oy % 2 or ox % 2:
                raise RuntimeError("minerva-dask internal error: DZ block origin is odd")
            arr, oy, ox = downsample_2x(arr), oy // 2, ox // 2
            y0, x0, y1, x1 = y0 // 2, x0 // 2, -(-y1 // 2), -(-x1 // 2)
        folder = os.path.join(job.files, str(level))
        for row in range(y0 // size, -(-y1 // size)):
            ty0, ty1 = _span(row, size, overlap, height)
            for col in range(x0 // size, -(-x1 // size)):
                tx0, tx1 = _span(col, size, overlap, width)
                if ty0 < oy or tx0 < ox or ty1 - oy > arr.shape[0] or tx1 - ox > arr.shape[1]:
                    raise RuntimeError(  # never a tile cut from fewer pixels than it covers
                        f"minerva-dask internal error: DZ tile {level}/{col}_{row} outside "
                        f"its block ({oy}, {ox}, {arr.shape})"
                    )
                data = encode_tile(
                    arr[ty0 - oy : ty1 - oy, tx0 - ox : tx1 - ox], job.fmt, job.quality
                )
                with open(os.path.join(folder, f"{col}_{row}.{SUFFIX[job.fmt]}"), "wb") as fh:
                    fh.write(data)
                written += 1
    if job.carry is not None:
        arr, oy, ox = downsample_2x(arr), oy // 2, ox // 2
        y0, x0, y1, x1 = y0 // 2, x0 // 2, -(-y1 // 2), -(-x1 // 2)
        os.makedirs(os.path.dirname(job.carry), exist_ok=True)
        tmp = f"{job.carry}.{os.urandom(4).hex()}.tmp"
        buffer = io.BytesIO()  # numpy's own file writes lose errno (ENOSPC: a full disk)
        np.save(buffer, np.ascontiguousarray(arr[y0 - oy : y1 - oy, x0 - ox : x1 - ox]))
        with open(tmp, "wb") as fh:
            fh.write(buffer.getbuffer())
        os.replace(tmp, job.carry)
    os.makedirs(os.path.dirname(job.marker), exist_ok=True)
    with open(job.marker, "w") as fh:
        fh.write(job.token)
    return written


def load_carry(path: str, shape: tuple[int, int]) -> np.ndarray:
    """A saved block of the next stage's level, checked to be the size expected."""
    block = np.load(path)
    if block.shape != (*shape, 3):
        raise RuntimeError(f"minerva-dask internal error: {path} is {block.shape}, not {shape}")
    return block
