"""A tiled TIFF pyramid level read tile by tile with tifffile alone, without zarr.

For the common layout, every plane one tiled page with one sample per pixel (what
Bio-Formats, tifffile and most OME-TIFF writers make), regions are read straight from
the tiles they touch: tifffile finds, reads and decodes the tiles (``read_segments``,
``TiffPage.decode``: predictors, byte order, every codec) and this module only places
them. Compared with tifffile's zarr store this skips importing zarr (about 0.2 s of
start-up) and zarr's per-chunk machinery, which made two threads read 12% slower than
bare decoding (bench/RESULTS.md). Other layouts (strips, interleaved samples, tiled
depth, contiguous series) keep the zarr store.

Thread safety. Dask's threads and the read-ahead threads read one open TIFF together.
Everything that touches the TIFF's file handle (loading an IFD, tifffile's delay-loaded
tag values, its zarr store) does so under the file handle's own lock, the one lock
(:func:`share_one_lock`). Tile bytes of a local file are read with ``os.pread`` on a
descriptor of our own (:class:`PositionalFile`), which moves no file position and so
needs no lock. A tile whose bytes come back short is an error naming the tile.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

__all__ = ["PositionalFile", "TiledPlanes", "segment_past_end", "share_one_lock"]


def share_one_lock(tif: Any, levels: list[Any]) -> contextlib.AbstractContextManager[Any]:
    """Give ``tif``'s file handle a real lock and return it: the ONE lock for that file.

    tifffile's ``FileHandle`` has no lock unless asked (``set_lock``); its zarr store turns
    one on, and its delay-loaded tag values seek and read under it. Every seek and read
    of the handle, ours and tifffile's, must hold this same lock: two locks guarding one
    handle let one thread's seek move the other's read.

    Also builds, under that lock, each page's decode function: tifffile builds it on
    first use (``TiffPage.decode``, a ``cached_property``), and for JPEG pages that
    seeks and reads the file with no lock at all (``TiffPage.is_jfif``), moving the file
    position under a concurrent read (the cause of reads starting 6 bytes into a tile).
    """
    fh = tif.filehandle
    fh.set_lock(True)
    lock = fh.lock
    with lock:
        for level in levels:
            level.keyframe.init_decode()
            if level.dataoffset is not None:
                continue  # one contiguous block, read with the keyframe: no page needed
            for page in level:  # OME and SubIFD series hold their pages already
                if page is not None:
                    page.keyframe.init_decode()
    return lock


def segment_past_end(level: Any, size: int) -> str | None:
    """Where a stored tile or strip of ``level`` runs past the end of a file of ``size``
    bytes (``"plane 2, strip 7: 612 bytes at offset 31200"``), else ``None``.

    For the levels tifffile's zarr store reads: its reads do not say when the file ends
    early (a cut uncompressed strip is read short without complaint), so a truncated file
    is found when opened.
    """
    if level.dataoffset is not None:  # one contiguous block
        if level.dataoffset + level.nbytes > size:
            return f"{level.nbytes} contiguous bytes at offset {level.dataoffset}"
        return None
    kind = "tile" if level.keyframe.is_tiled else "strip"
    for plane, page in enumerate(level):
        if page is None:
            continue
        offsets = np.asarray(page.dataoffsets, np.int64)
        counts = np.asarray(page.databytecounts, np.int64)
        bad = np.flatnonzero((offsets > 0) & (counts > 0) & (offsets + counts > size))
        if bad.size:
            k = int(bad[0])
            return f"plane {plane}, {kind} {k}: {counts[k]} bytes at offset {offsets[k]}"
    return None


class PositionalFile:
    """A local file read by offset (``os.pread``): no shared position, so no lock.

    Calling it as ``fetch(offsets, byte_counts)`` returns the bytes of each range (short
    where the file ends early: the caller checks). ``close()`` waits for reads in flight,
    so a descriptor number is never reused under a running read.
    """

    def __init__(self, path: str) -> None:
        self._fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        self._guard = threading.Lock()
        self._users = 0
        self._closing = False

    @staticmethod
    def available() -> bool:
        """Whether this platform reads by offset (``os.pread``; not on Windows)."""
        return hasattr(os, "pread")

    def __call__(self, offsets: list[int], counts: list[int]) -> list[bytes]:
        with self._guard:
            if self._fd is None or self._closing:
                raise ValueError("the file was closed while reading")
            fd = self._fd
            self._users += 1
        try:
            pairs = zip(offsets, counts, strict=True)
            return [_pread_fully(fd, count, offset) for offset, count in pairs]
        finally:
            with self._guard:
                self._users -= 1
                if self._closing and not self._users:
                    self._release()

    def close(self) -> None:
        with self._guard:
            self._closing = True
            if not self._users:
                self._release()

    def _release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _pread_fully(fd: int, count: int, offset: int) -> bytes:
    """``count`` bytes at ``offset``, fewer only where the file ends."""
    data = os.pread(fd, count, offset)
    if len(data) == count or not data:
        return data
    parts = [data]
    got = len(data)
    while got < count:
        more = os.pread(fd, count - got, offset + got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class TiledPlanes:
    """One pyramid level as an array-like ``(*planes, height, width)`` in the series' axis
    order (leading axes such as C, Z, T, then Y, X), read tile by tile.

    Indexing takes, per leading axis, an int, a slice or a list (lists are orthogonal, as
    zarr's ``oindex``), and step-1 slices for Y and X. Absent tiles (offset or byte count
    0, as sparse TIFFs have) read as zeros, as tifffile reads them.

    Pages are loaded from the file under ``lock``, which must be the lock of the TIFF's
    file handle (:func:`share_one_lock`). Tile bytes come from ``fetch(offsets,
    byte_counts)`` when given (a :class:`PositionalFile`, or a remote file's stateless
    range requests, which threads can have in flight together), else from the file
    handle under ``lock``. Each tile's bytes must be as long as the TIFF says and each
    decoded tile the page's tile shape and dtype; otherwise ``ValueError`` names the tile.
    """

    def __init__(
        self,
        level: Any,
        lock: contextlib.AbstractContextManager[Any],
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
            with self._lock:  # tifffile may read the IFD, and tag values, from the file
                page = self._level.pages[index]
                page.keyframe.init_decode()  # may read the file too (TiffPage.is_jfif)
                self._pages[index] = page
        return page

    def _decoded(self, pieces: list[_Piece]) -> Iterator[tuple[_Piece, np.ndarray]]:
        """Each piece with its whole decoded tile; a tile wanted by several pieces (a plane
        asked twice) is read and decoded once. A remote file fetches every tile in one
        batch of range requests (all planes and tiles in flight together); a local one is
        read page by page through the TIFF's file handle, under the lock. Every tile's
        bytes are checked against the byte count the TIFF gives."""
        wanted: dict[tuple[int, int], list[_Piece]] = {}
        index_of = {id(piece.page): piece.plane for piece in pieces}
        for piece in pieces:
            wanted.setdefault((id(piece.page), piece.tile), []).append(piece)
        if self._fetch is not None and wanted:
            first = [group[0] for group in wanted.values()]
            datas = self._fetch(
                [p.page.dataoffsets[p.tile] for p in first],
                [p.page.databytecounts[p.tile] for p in first],
            )
            for piece, data in zip(first, datas, strict=True):
                decoded = self._decode(piece.page, data, piece.tile, index_of[id(piece.page)])
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
                decoded = self._decode(page, data, tile, index_of[page_id])
                for same in wanted[(page_id, tile)]:
                    yield same, decoded

    def _decode(self, page: Any, data: bytes | None, tile: int, plane: int) -> np.ndarray:
        """Tile ``tile`` of ``page`` (plane ``plane``) from its stored bytes, as
        ``(tile_h, tile_w)``; ``ValueError`` naming the tile if the bytes are short or
        decode to another shape or dtype."""
        keyframe = self._keyframe
        expected = int(page.databytecounts[tile])
        got = 0 if data is None else len(data)
        if got != expected:
            raise ValueError(
                f"{self._name_tile(tile, plane)}: the TIFF gives {expected} bytes at offset "
                f"{page.dataoffsets[tile]}, the file holds {got} there (truncated file?)"
            )
        decode_args: dict[str, Any] = {"_fullsize": True}
        if page.jpegtables is not None:
            decode_args["jpegtables"] = page.jpegtables
        if keyframe.jpegheader is not None:
            decode_args["jpegheader"] = keyframe.jpegheader
        decoded = keyframe.decode(data, tile, **decode_args)[0]
        shape = (keyframe.tilelength, keyframe.tilewidth)
        if (
            decoded is None
            or decoded.size != shape[0] * shape[1]
            or decoded.dtype.newbyteorder("=") != self.dtype.newbyteorder("=")
        ):
            what = "nothing" if decoded is None else f"{decoded.shape} {decoded.dtype}"
            raise ValueError(
                f"{self._name_tile(tile, plane)} decodes to {what}, not the page's tile "
                f"{shape[1]} x {shape[0]} {self.dtype}"
            )
        return decoded.reshape(shape)

    def _name_tile(self, tile: int, plane: int) -> str:
        across = -(-self.shape[-1] // self._keyframe.tilewidth)
        x = tile % across * self._keyframe.tilewidth
        y = tile // across * self._keyframe.tilelength
        return f"tile {tile} (x={x}, y={y}) of plane {plane}"

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
                    pieces.append(_Piece(page, index, tile, target, source))
                else:
                    target[...] = 0
        return pieces


class _Piece:
    """One stored tile of one page and where its part goes in the output."""

    __slots__ = ("page", "plane", "source", "target", "tile")

    def __init__(
        self, page: Any, plane: int, tile: int, target: np.ndarray, source: tuple[slice, ...]
    ):
        self.page, self.plane, self.tile = page, plane, tile
        self.target, self.source = target, source

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
