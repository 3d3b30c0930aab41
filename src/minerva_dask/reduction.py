"""Block means: the pixels of a pyramid level reduced by an integer factor on the fly.

A *virtual level* (see :func:`minerva_dask.geometry.choose_reduction`) has, at pixel
``(i, j)``, the mean of the ``k x k`` block of level pixels ``[j k, (j + 1) k) x
[i k, (i + 1) k)`` (x, y) that lie inside the level. Means of integers are rounded half up
to the dtype, so a virtual pixel holds what a pyramid level would; floats are averaged in
float64. The level is read one tile (or a part of one) at a time and summed into the
block sums as it arrives, so memory is the output block and one tile, whatever ``k``.

Pure numpy: no dask, nothing of ours but :class:`~minerva_dask.geometry.Rect`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .geometry import Rect

__all__ = ["block_means"]


def _sum_dtype(dtype: np.dtype, k: int) -> np.dtype:
    """int64 where ``2 k^2 max|value|`` fits in it (exact means), else float64."""
    if dtype.kind in "biu":
        info = np.iinfo(np.uint8 if dtype.kind == "b" else dtype)
        largest = max(-int(info.min), int(info.max))
        if 2 * k * k * largest < 2**62:
            return np.dtype(np.int64)
    return np.dtype(np.float64)


def _starts(start: int, stop: int, k: int) -> np.ndarray:
    """Offsets in ``[start, stop)`` (relative to ``start``) where a k-block begins, plus 0."""
    first = -(-(start + 1) // k) * k  # the first multiple of k after start
    return np.concatenate(([0], np.arange(first, stop, k) - start)).astype(np.intp)


def _counts(start: int, size: int, k: int, extent: int) -> np.ndarray:
    """Level pixels inside ``[0, extent)`` of each virtual pixel ``start .. start+size-1``."""
    lo = np.arange(start, start + size, dtype=np.int64) * k
    return np.minimum(lo + k, extent) - lo


def block_means(
    read: Callable[[Rect], np.ndarray],
    rect: Rect,
    k: int,
    level_size: tuple[int, int],
    tile_size: tuple[int, int],
    dtype: np.dtype,
    *,
    channels_last: bool = False,
) -> np.ndarray:
    """Virtual pixels ``rect`` of a level reduced by ``k``.

    ``rect`` is in virtual pixels and inside the virtual level
    (``ceil(width / k) x ceil(height / k)`` for ``level_size`` ``(width, height)``).
    ``read(level_rect)`` returns level pixels ``(c, y, x)`` (``(y, x, c)`` with
    ``channels_last``); it is called once per piece of a level tile (``tile_size``)
    that the blocks cover, never for more than one tile. Returns ``dtype`` pixels in the
    same layout.

    >>> level = np.arange(5 * 4, dtype=np.uint8).reshape(1, 4, 5)  # 5 wide, 4 high
    >>> read = lambda r: level[:, r.y : r.y + r.height, r.x : r.x + r.width]
    >>> block_means(read, Rect(0, 0, 3, 2), 2, (5, 4), (3, 3), np.dtype(np.uint8))[0].tolist()
    [[3, 5, 7], [13, 15, 17]]
    """
    width, height = level_size
    tile_w, tile_h = tile_size
    vx0, vy0, vw, vh = (int(v) for v in (rect.x, rect.y, rect.width, rect.height))
    sx0, sy0 = vx0 * k, vy0 * k
    sx1, sy1 = min((vx0 + vw) * k, width), min((vy0 + vh) * k, height)
    acc = _sum_dtype(np.dtype(dtype), k)
    sums: np.ndarray | None = None
    for ty in range(sy0 - sy0 % tile_h, sy1, tile_h):
        py0, py1 = max(ty, sy0), min(ty + tile_h, sy1)
        rows = _starts(py0, py1, k)
        for tx in range(sx0 - sx0 % tile_w, sx1, tile_w):
            px0, px1 = max(tx, sx0), min(tx + tile_w, sx1)
            block = read(Rect(px0, py0, px1 - px0, py1 - py0))
            if channels_last:
                block = np.moveaxis(block, -1, 0)
            part = np.add.reduceat(block, _starts(px0, px1, k), axis=2, dtype=acc)
            part = np.add.reduceat(part, rows, axis=1)
            if sums is None:
                sums = np.zeros((block.shape[0], vh, vw), acc)
            iy, ix = py0 // k - vy0, px0 // k - vx0
            sums[:, iy : iy + part.shape[1], ix : ix + part.shape[2]] += part
    if sums is None:
        raise ValueError(f"{rect} does not lie inside the level {level_size} reduced by {k}")
    counts = _counts(vy0, vh, k, height)[:, None] * _counts(vx0, vw, k, width)[None, :]
    if np.dtype(dtype).kind in "biu":
        if acc.kind == "i":
            means = (2 * sums + counts) // (2 * counts)  # round half up, exactly
        else:
            means = np.floor(sums / counts + 0.5)
    else:
        means = sums / counts
    out = means.astype(dtype)
    return np.moveaxis(out, 0, -1) if channels_last else out
