"""A tiled TIFF pyramid level read tile by tile with tifffile alone, without zarr.

For the common layout, every plane one tiled page with one sample per pixel (what
Bio-Formats, tifffile and most OME-TIFF writers make), regions are read straight from
the tiles they touch: tifffile finds, reads and decodes the tiles (``read_segments``,
``TiffPage.decode``: predictors, byte order, every codec) and this module only places
them. Compared with tifffile's zarr store this skips importing zarr (about 0.2 s of
start-up) and zarr's per-chunk machinery, which made two threads read 12% slower than
bare decoding (bench/RESULTS.md). Other layouts (strips, interleaved samples, tiled
depth, contiguous series) keep the zarr store.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["TiledPlanes"]


class TiledPlanes:
    """One pyramid level as an array-like ``(*planes, height, width)`` in the series' axis
    order (leading axes such as C, Z, T, then Y, X), read tile by tile.

    Indexing takes, per leading axis, an int, a slice or a list (lists are orthogonal, as
    zarr's ``oindex``), and step-1 slices for Y and X. Absent tiles (offset or byte count
    0, as sparse TIFFs have) read as zeros, as tifffile reads them.

    Tile bytes come from the TIFF's own file handle under ``lock`` (a local file), or from
    ``fetch(offsets, byte_counts)`` when given: a remote file, read by stateless range
    requests that threads can have in flight together.
    """

    def __init__(
        self,
        level: Any,
        lock: threading.RLock,
        fetch: Callable[[list[int], list[int]], list[bytes]] | None = None,
    ) -> None:
        self._level = level
        self._keyframe = level.keyframe
        self._lock = lock
        self._fetch = fetch
        self._pages: dict[int, Any] = {}
        self.shape: tuple[int, ...] = tuple(level.shape)
        self.dtype = np.dtype(level.dtype)
        self.ndim = len(self.shape)

    @staticmethod
    def supports(level: Any) -> bool:
        """Whether ``level`` (a tifffile level series) has the layout this class reads."""
        keyframe = level.keyframe
        shape = tuple(level.shape)
        return (
            level.dataoffset is None
            and keyframe.is_tiled
            and keyframe.samplesperpixel == 1
            and keyframe.imagedepth == 1
            and len(shape) >= 2
            and shape[-2:] == tuple(keyframe.shape)
            and len(level.pages) == math.prod(shape[:-2])
        )

    @property
    def oindex(self) -> TiledPlanes:
        return self  # indexing is orthogonal already

    def __getitem__(self, key: Any) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        if len(key) != self.ndim:
            raise IndexError(f"need {self.ndim} indices, got {len(key)}")
        *leading, y_sel, x_sel = key
        height, width = self.shape[-2:]
        y0, y1 = _span(y_sel, height)
        x0, x1 = _span(x_sel, width)
        picked: list[list[int]] = []
        keep: list[Any] = []
        for selector, size in zip(leading, self.shape[:-2], strict=True):
            axis = range(size)
            if isinstance(selector, slice):
                picked.append(list(axis[selector]))
                keep.append(slice(None))
            elif isinstance(selector, (int, np.integer)):
                picked.append([axis[selector]])
                keep.append(0)
            else:
                picked.append([axis[i] for i in selector])
                keep.append(slice(None))
        out = np.empty((*map(len, picked), y1 - y0, x1 - x0), self.dtype)
        pieces: list[_Piece] = []
        for position in itertools.product(*(range(len(p)) for p in picked)):
            plane = [p[i] for p, i in zip(picked, position, strict=True)]
            page = int(np.ravel_multi_index(plane, self.shape[:-2])) if plane else 0
            pieces += self._plan_plane(page, y0, y1, x0, x1, out[position])
        if len(pieces) == 1 and pieces[0].target.size == out.size == pieces[0].tile_size:
            # exactly one whole stored tile: hand it over as decoded, no copy
            ((_, tile),) = self._decoded(pieces)
            return tile.reshape(out.shape)[(*keep, slice(None), slice(None))]
        for piece, decoded in self._decoded(pieces):
            piece.place(decoded)
        return out[(*keep, slice(None), slice(None))]

    def _page(self, index: int) -> Any:
        page = self._pages.get(index)
        if page is None:
            with self._lock:  # tifffile may read the IFD from the file
                page = self._pages[index] = self._level.pages[index]
        return page

    def _decoded(self, pieces: list[_Piece]) -> Iterator[tuple[_Piece, np.ndarray]]:
        """Each piece with its whole decoded tile; a tile wanted by several pieces (a plane
        asked twice) is read and decoded once. A remote file fetches every tile in one
        batch of range requests (all planes and tiles in flight together); a local one is
        read page by page through the TIFF's file handle, under the lock."""
        wanted: dict[tuple[int, int], list[_Piece]] = {}
        for piece in pieces:
            wanted.setdefault((id(piece.page), piece.tile), []).append(piece)
        if self._fetch is not None and wanted:
            first = [group[0] for group in wanted.values()]
            datas = self._fetch(
                [p.page.dataoffsets[p.tile] for p in first],
                [p.page.databytecounts[p.tile] for p in first],
            )
            for piece, data in zip(first, datas, strict=True):
                decoded = self._decode(piece.page, data, piece.tile)
                for same in wanted[(id(piece.page), piece.tile)]:
                    yield same, decoded
            return
        by_page: dict[int, list[int]] = {}
        for page_id, tile in wanted:
            by_page.setdefault(page_id, []).append(tile)
        for page_id, tiles in by_page.items():
            page = wanted[(page_id, tiles[0])][0].page
            segments = page.parent.filehandle.read_segments(
                [page.dataoffsets[t] for t in tiles],
                [page.databytecounts[t] for t in tiles],
                tiles,
                lock=self._lock,
            )
            for data, tile in segments:
                decoded = self._decode(page, data, tile)
                for same in wanted[(page_id, tile)]:
                    yield same, decoded

    def _decode(self, page: Any, data: bytes, tile: int) -> np.ndarray:
        """Tile ``tile`` of ``page`` from its stored bytes, as ``(tile_h, tile_w)``."""
        keyframe = self._keyframe
        decode_args: dict[str, Any] = {"_fullsize": True}
        if page.jpegtables is not None:
            decode_args["jpegtables"] = page.jpegtables
        if keyframe.jpegheader is not None:
            decode_args["jpegheader"] = keyframe.jpegheader
        decoded = keyframe.decode(data, tile, **decode_args)[0]
        return decoded.reshape(keyframe.tilelength, keyframe.tilewidth)

    def _plan_plane(
        self, index: int, y0: int, y1: int, x0: int, x1: int, out: np.ndarray
    ) -> list[_Piece]:
        """The stored tiles that fill ``out`` (``(y1 - y0, x1 - x0)``) from plane ``index``;
        parts whose tile is absent are zeroed here."""
        if y1 <= y0 or x1 <= x0:
            return []
        page, keyframe = self._page(index), self._keyframe
        tile_w, tile_h = keyframe.tilewidth, keyframe.tilelength
        across = -(-self.shape[-1] // tile_w)
        offsets, counts = page.dataoffsets, page.databytecounts
        pieces = []
        for ty in range(y0 // tile_h, -(-y1 // tile_h)):
            for tx in range(x0 // tile_w, -(-x1 // tile_w)):
                tile = ty * across + tx
                ty0, tx0 = ty * tile_h, tx * tile_w
                ya, yb = max(y0, ty0), min(y1, ty0 + tile_h)
                xa, xb = max(x0, tx0), min(x1, tx0 + tile_w)
                target = out[ya - y0 : yb - y0, xa - x0 : xb - x0]
                if tile < len(offsets) and offsets[tile] and counts[tile]:
                    source = (slice(ya - ty0, yb - ty0), slice(xa - tx0, xb - tx0))
                    pieces.append(_Piece(page, tile, target, source))
                else:
                    target[...] = 0
        return pieces


class _Piece:
    """One stored tile of one page and where its part goes in the output."""

    __slots__ = ("page", "source", "target", "tile")

    def __init__(self, page: Any, tile: int, target: np.ndarray, source: tuple[slice, ...]):
        self.page, self.tile, self.target, self.source = page, tile, target, source

    @property
    def tile_size(self) -> int:
        """Pixels in the whole stored tile."""
        return self.page.keyframe.tilewidth * self.page.keyframe.tilelength

    def place(self, decoded: np.ndarray) -> None:
        self.target[...] = decoded[self.source]


def _span(selector: Any, size: int) -> tuple[int, int]:
    if not isinstance(selector, slice):
        raise IndexError(f"Y and X take slices, got {selector!r}")
    start, stop, step = selector.indices(size)
    if step != 1:
        raise IndexError("Y and X slices must have step 1")
    return start, max(start, stop)
