"""A tiled, pyramidal (SubIFD) TIFF written from compressed tiles, in any order.

Tile bytes are appended as they come, their offsets and byte counts recorded; the IFDs
(one per page of level 0, chained, each with SubIFDs for its lower levels, as tifffile
writes an OME pyramid) follow the data at the end, and the header is then pointed at the
first. The writer holds no tile, only two integers per tile.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from fractions import Fraction
from typing import BinaryIO

import numpy as np

__all__ = ["TiffTiles"]

ASCII, SHORT, LONG, RATIONAL, IFD, LONG8, IFD8 = 2, 3, 4, 5, 13, 16, 18
_SIZES = {ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, IFD: 4, LONG8: 8, IFD8: 8}
_CODES = {SHORT: "H", LONG: "I", IFD: "I", LONG8: "Q", IFD8: "Q"}


class TiffTiles:
    """Write a TIFF of ``pages`` pages, each a pyramid of ``shapes`` in ``tile`` tiles.

    ``tags(level)`` (code -> (type, values)) are a level's own tags besides the layout's;
    ``description`` goes in the first IFD's ImageDescription. :meth:`add` each tile's
    bytes, then :meth:`close`.
    """

    def __init__(
        self,
        fh: BinaryIO,
        shapes: list[tuple[int, int]],
        tile: int,
        pages: int,
        *,
        bigtiff: bool,
    ) -> None:
        self.fh, self.shapes, self.tile, self.pages, self.big = fh, shapes, tile, pages, bigtiff
        self.grids = [(-(-h // tile), -(-w // tile)) for h, w in shapes]
        self.offsets = [np.zeros((pages, r * c), np.uint64) for r, c in self.grids]
        self.counts = [np.zeros((pages, r * c), np.uint64) for r, c in self.grids]
        header = b"II+\x00\x08\x00\x00\x00" + bytes(8) if bigtiff else b"II*\x00" + bytes(4)
        fh.seek(0)
        fh.write(header)
        self.end = len(header)

    def add(self, level: int, page: int, row: int, col: int, data: bytes) -> None:
        index = row * self.grids[level][1] + col
        if self.counts[level][page, index]:
            raise RuntimeError(
                f"minerva-dask internal error: tile {level}/{page}/{row},{col} written twice"
            )
        self.offsets[level][page, index] = self.end
        self.counts[level][page, index] = len(data)
        self.fh.write(data)
        self.end += len(data)

    def close(self, tags: Callable[[int], dict[int, tuple[int, object]]], description: str) -> None:
        """Write every IFD after the data (lower levels first, so each page's IFD knows
        its SubIFDs), chain the pages, point the header at the first."""
        missing = [i for i, c in enumerate(self.counts) if not c.all()]
        if missing:
            raise RuntimeError(f"minerva-dask internal error: levels {missing} lack tiles")
        if self._word(self.end) is None:
            raise RuntimeError("minerva-dask internal error: a classic TIFF over 4 GB")
        subifds: list[list[int]] = []
        for page in range(self.pages):
            subifds.append(
                [
                    self._ifd(level, page, tags, None, None, 0)
                    for level in range(1, len(self.shapes))
                ]
            )
        following = 0
        for page in reversed(range(self.pages)):
            text = description if page == 0 else None
            following = self._ifd(0, page, tags, text, subifds[page], following)
        self.fh.seek(8 if self.big else 4)
        self.fh.write(struct.pack("<Q" if self.big else "<I", following))
        self.fh.flush()

    def _word(self, value: int) -> int | None:
        return value if self.big or value < 2**32 else None

    def _ifd(
        self,
        level: int,
        page: int,
        common: Callable[[int], dict[int, tuple[int, object]]],
        description: str | None,
        subifds: list[int] | None,
        following: int,
    ) -> int:
        height, width = self.shapes[level]
        offset_type = LONG8 if self.big else LONG
        tags = dict(common(level))
        tags.update(
            {
                256: (LONG, [width]),
                257: (LONG, [height]),
                322: (LONG, [self.tile]),
                323: (LONG, [self.tile]),
                324: (offset_type, self.offsets[level][page].tolist()),
                325: (offset_type, self.counts[level][page].tolist()),
            }
        )
        if level:
            tags[254] = (LONG, [1])  # NewSubfileType: a reduced-resolution image
        if description is not None:
            tags[270] = (ASCII, description)
        if subifds:
            tags[330] = (IFD8 if self.big else IFD, subifds)
        entry, inline = (20, 8) if self.big else (12, 4)
        payload = bytearray()
        entries = []
        for code in sorted(tags):
            kind, values = tags[code]
            raw, count = _pack(kind, values)
            entries.append((code, kind, count, raw))
        size = (8 if self.big else 2) + entry * len(entries) + (8 if self.big else 4)
        start = self.end + (self.end % 2)  # IFDs begin on a word boundary
        data_at = start + size
        body = bytearray()
        body += struct.pack("<Q" if self.big else "<H", len(entries))
        for code, kind, count, raw in entries:
            body += struct.pack("<HHQ" if self.big else "<HHI", code, kind, count)
            if len(raw) <= inline:
                body += raw + bytes(inline - len(raw))
            else:
                at = data_at + len(payload)
                body += struct.pack("<Q" if self.big else "<I", at)
                payload += raw + bytes(len(raw) % 2)
        body += struct.pack("<Q" if self.big else "<I", following)
        self.fh.seek(self.end)
        self.fh.write(bytes(start - self.end) + bytes(body) + bytes(payload))
        self.end = data_at + len(payload)
        return start


def _pack(kind: int, values: object) -> tuple[bytes, int]:
    if kind == ASCII:
        raw = str(values).encode("utf-8") + b"\x00"
        return raw, len(raw)
    items = list(values)  # type: ignore[call-overload]
    if kind == RATIONAL:
        raw = b"".join(struct.pack("<II", *_rational(v)) for v in items)
        return raw, len(items)
    return struct.pack(f"<{len(items)}{_CODES[kind]}", *items), len(items)


def _rational(value: object) -> tuple[int, int]:
    if isinstance(value, tuple):
        return int(value[0]), int(value[1])
    fraction = Fraction(value).limit_denominator(2**32 - 1)  # type: ignore[arg-type]
    while fraction.numerator >= 2**32:
        fraction = Fraction(fraction.numerator >> 1, max(1, fraction.denominator >> 1))
    return fraction.numerator, fraction.denominator
