"""A minimal source over the 2018 reference tiles: proof that the protocol is small.

Layout ``{channel}/{i}/{j}/tile.npy``, 256x256 uint16, ``i`` the tile column (x), ``j``
the tile row (y). Channel 0 is ``red``, channel 1 ``green``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from minerva_dask.geometry import Rect
from minerva_dask.sources.base import ChannelInfo, ImageInfo, LevelInfo

TILE = 256


class NpyTileSource:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.names = ("red", "green")
        self.info = ImageInfo(
            name="minerva-lib-2018-red-green",
            dtype=np.dtype("uint16"),
            size_c=2,
            size_z=1,
            size_t=1,
            levels=(LevelInfo(1024, 1024, TILE, TILE),),
            channels=tuple(
                ChannelInfo(i, n, (1.0, 1.0, 1.0), (0.0, 65535.0)) for i, n in enumerate(self.names)
            ),
        )

    def read_region(self, level, rect: Rect, channels, *, z=0, t=0) -> np.ndarray:
        x0, y0 = int(rect.x), int(rect.y)
        out = np.empty((len(channels), int(rect.height), int(rect.width)), np.uint16)
        for tile_y in range(y0 // TILE, (y0 + int(rect.height) - 1) // TILE + 1):
            for tile_x in range(x0 // TILE, (x0 + int(rect.width) - 1) // TILE + 1):
                tile_rect = Rect(tile_x * TILE, tile_y * TILE, TILE, TILE).intersection(rect)
                assert tile_rect is not None
                for k, channel in enumerate(channels):
                    tile = np.load(
                        self.folder / self.names[channel] / str(tile_x) / str(tile_y) / "tile.npy"
                    )
                    tx, ty = int(tile_rect.x) - tile_x * TILE, int(tile_rect.y) - tile_y * TILE
                    w, h = int(tile_rect.width), int(tile_rect.height)
                    out[
                        k,
                        int(tile_rect.y) - y0 : int(tile_rect.y) - y0 + h,
                        int(tile_rect.x) - x0 : int(tile_rect.x) - x0 + w,
                    ] = tile[ty : ty + h, tx : tx + w]
        return out

    def close(self) -> None:
        pass
