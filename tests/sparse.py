"""A big OME-TIFF pyramid that takes little disk: levels left empty except the coarsest.

The 2018 scripts' default OMERO URL asks for a region of a 40000 x 30000 slide at 1/16
scale. This writes such a slide, with real pixels only at the level that render reads;
the other levels repeat one compressed all-zero tile, so the file is a few MB.
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import tifffile

TILE = 1024


def write_sparse_pyramid(path, coarsest: np.ndarray, levels: int) -> None:
    """``coarsest`` is ``(c, y, x)`` uint16 of the last level; level 0 is 2**(levels-1)
    times larger on each side; all but the last level hold zeros."""
    channels, height, width = coarsest.shape
    factor = 2 ** (levels - 1)
    zero_tile = zlib.compress(np.zeros((TILE, TILE), np.uint16).tobytes())
    options = {"tile": (TILE, TILE), "compression": "zlib", "dtype": np.uint16}
    with tifffile.TiffWriter(path, ome=True) as writer:
        for level in range(levels - 1):
            scale = factor // 2**level
            shape = (channels, height * scale, width * scale)
            count = channels * math.ceil(shape[1] / TILE) * math.ceil(shape[2] / TILE)
            tiles = (zero_tile for _ in range(count))
            if level == 0:
                writer.write(
                    tiles,
                    shape=shape,
                    subifds=levels - 1,
                    photometric="minisblack",
                    metadata={"axes": "CYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65},
                    **options,
                )
            else:
                writer.write(tiles, shape=shape, subfiletype=1, photometric="minisblack", **options)
        writer.write(
            coarsest, subfiletype=1, photometric="minisblack", tile=(TILE, TILE), compression="zlib"
        )
