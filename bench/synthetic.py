"""A source that makes pixels instead of reading them: any size, no files, no I/O.

For benchmarks of the graph and the kernel in isolation from storage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from minerva_dask.geometry import Rect
from minerva_dask.sources.base import ChannelInfo, ImageInfo, LevelInfo


class SyntheticSource:
    """A ``size_c``-channel uint16 pyramid of ``width`` x ``height`` with ``tile``-px tiles."""

    def __init__(self, width: int, height: int, size_c: int, tile: int = 1024) -> None:
        self.shape = (width, height, size_c, tile)
        levels, w, h, f = [], width, height, 1
        while True:
            levels.append(LevelInfo(w, h, tile, tile, (float(f), float(f))))
            if max(w, h) <= tile:
                break
            w, h, f = -(-w // 2), -(-h // 2), f * 2
        self.info = ImageInfo(
            name="synthetic",
            dtype=np.dtype("uint16"),
            size_c=size_c,
            size_z=1,
            size_t=1,
            levels=tuple(levels),
            channels=tuple(
                ChannelInfo(i, f"C{i}", (1.0, 1.0, 1.0), (0.0, 65535.0)) for i in range(size_c)
            ),
        )

    def __dask_tokenize__(self) -> tuple:
        return ("synthetic", *self.shape)

    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray:
        y = np.arange(int(rect.y), int(rect.y + rect.height), dtype=np.uint32)[:, None]
        x = np.arange(int(rect.x), int(rect.x + rect.width), dtype=np.uint32)[None, :]
        base = ((x * 7 + y * 13) % 65536).astype(np.uint16)
        return np.stack([base + np.uint16(c * 997) for c in channels])

    def close(self) -> None:
        pass
