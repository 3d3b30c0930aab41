"""Output pyramids: each level is the 2 x 2 mean of the level above, in ``(y, x, ...)``.

For odd sizes the last row or column is repeated before averaging (the level has
``ceil(n / 2)`` rows or columns), and integer means round half up:
``(a + b + c + d + 2) // 4`` (floats: the plain mean).
Levels go down until the longest side fits in one tile.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["downsample_2x", "pyramid_shapes"]


def downsample_2x(block: np.ndarray) -> np.ndarray:
    """2 x 2 mean of a ``(y, x, ...)`` block of any integer or float dtype; odd edges
    repeat their last pixel. Integers round half up, ``(a + b + c + d + 2) // 4`` (floor
    division, so also for negative values), summed where no sum can overflow (uint8 in
    uint16, other unsigned in uint64, signed in int64); floats take the plain mean.

    >>> downsample_2x(np.array([[0, 1, 9], [2, 3, 9]], np.uint8)[..., None])[..., 0].tolist()
    [[2, 9]]
    >>> downsample_2x(np.array([[65535, 65535], [65535, 65534]], np.uint16))[0].tolist()
    [65535]
    >>> downsample_2x(np.array([[-3, -2], [-2, -2]], np.int8))[0].tolist()
    [-2]
    """
    height, width = block.shape[:2]
    pad = ((0, height % 2), (0, width % 2)) + ((0, 0),) * (block.ndim - 2)
    if height % 2 or width % 2:
        block = np.pad(block, pad, mode="edge")
    kind = block.dtype.kind
    if kind == "f":
        wide: type = np.float64
    elif kind == "u":
        wide = np.uint16 if block.dtype.itemsize == 1 else np.uint64
    else:
        wide = np.int64
    total = block[0::2, 0::2].astype(wide)  # one quarter-size sum, in place
    for dy, dx in ((1, 0), (0, 1), (1, 1)):
        np.add(total, block[dy::2, dx::2], out=total, casting="unsafe")
    if kind == "f":
        return (total / 4).astype(block.dtype)
    total += 2
    total //= 4
    return total.astype(block.dtype)


def pyramid_shapes(height: int, width: int, tile: int) -> list[tuple[int, int]]:
    """``(height, width)`` of each level, halving (rounding up) until one tile holds it.

    >>> pyramid_shapes(3000, 1500, 1024)
    [(3000, 1500), (1500, 750), (750, 375)]
    """
    shapes = [(height, width)]
    while max(shapes[-1]) > tile:
        h, w = shapes[-1]
        shapes.append((math.ceil(h / 2), math.ceil(w / 2)))
    return shapes
