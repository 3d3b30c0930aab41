"""The pixel work of a pyramidal TIFF, done where the pixels are: tiles and lower levels.

A *stage* task takes a block of ``side`` pixels a side at its base level (a rendered chunk
of level 0, or a mosaic of the small blocks its children left), compresses its tiles,
halves it and compresses those tiles, for as long as the halved block is still whole
tiles (a block of ``tile * 2**k`` pixels gives ``k + 1`` levels), and leaves the next
halving, ``side / 2**(k + 1)`` pixels a side, for the stage above: ``2**(k + 1)`` such
blocks a side make one block of that stage. A task returns compressed tile bytes and
that small block, nothing else: the process writing the file never sees a pixel.

Blocks are held as ``(y, x, pages, samples)``: an RGB rendering is one page of three
samples, ``(c, y, x)`` planes are ``c`` pages of one. Lower levels are the 2 x 2 means of
:func:`._pyramid.downsample_2x`, so every level is exact wherever a block boundary falls
(blocks start at even pixels of every level they make).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._memory import reuse_freed_memory
from ._meta import check_block
from ._pyramid import downsample_2x

__all__ = ["TileSpec", "encode_leaf", "encode_node", "fan_out"]

# TIFF compression tag, PhotometricInterpretation override (None: as the pixels say)
CODECS = {
    "zlib": 8,  # ADOBE_DEFLATE, as tifffile writes it
    "jpeg": 7,
    "lzw": 5,
    "zstd": 50000,
    None: 1,
}

Tile = tuple[int, int, int, int, bytes]  # level, page, tile row, tile column, bytes


@dataclass(frozen=True, slots=True)
class TileSpec:
    """What every task needs to know about the pyramid: small, picklable."""

    tile: int  # TIFF tile side, a power of two
    side: int  # block side at the base level of every stage, a multiple of ``tile``
    shapes: tuple[tuple[int, int], ...]  # (height, width) of every level
    pages: int  # 1 for RGB, the channel count for planes
    samples: int  # 3 for RGB, 1 for planes
    dtype: str
    codec: str | None  # imagecodecs name, or None for uncompressed
    codec_args: tuple[tuple[str, object], ...] = ()
    layout: str = "yxs"  # the rendered block's axes: "yxs" (y, x, rgb) or "cyx"

    @property
    def per_stage(self) -> int:
        """Levels one stage makes: ``k + 1`` for a side of ``tile * 2**k * odd``."""
        ratio, count = self.side // self.tile, 1
        while ratio % 2 == 0:
            ratio //= 2
            count += 1
        return count

    def stage_levels(self) -> list[int]:
        """The base level of every stage, from level 0."""
        return list(range(0, len(self.shapes), self.per_stage))

    def grid(self, level: int) -> tuple[int, int]:
        """Blocks (rows, columns) of ``side`` pixels covering ``level``."""
        height, width = self.shapes[level]
        return -(-height // self.side), -(-width // self.side)


def fan_out(spec: TileSpec) -> int:
    """Children a side of a stage's block: ``2**(levels per stage)``."""
    return 2**spec.per_stage


def encode_leaf(block: np.ndarray, spec: TileSpec, row: int, col: int) -> tuple[list, object]:
    """A rendered level-0 block ``(row, col)``: its tiles, and the small block it leaves."""
    reuse_freed_memory()  # in this task's process (a worker's): once
    height, width = spec.shapes[0]
    size = (min(spec.side, height - row * spec.side), min(spec.side, width - col * spec.side))
    if spec.layout == "cyx":
        block = check_block(block, f"block ({row}, {col})", (spec.pages, *size), spec.dtype)
        block = np.moveaxis(block, 0, -1)[..., None]  # (y, x, c, 1)
    else:
        block = check_block(block, f"block ({row}, {col})", (*size, spec.samples), spec.dtype)
        block = block[:, :, None, :]  # (y, x, 1, 3)
    return _encode_block(block, spec, 0, row * spec.side, col * spec.side)


def encode_node(
    spec: TileSpec, level: int, row: int, col: int, columns: int, *children: np.ndarray
) -> tuple[list, object]:
    """Block ``(row, col)`` of ``level`` from its children's small blocks (row-major,
    ``columns`` a row): its tiles, and the small block it leaves."""
    rows = [
        np.concatenate(children[start : start + columns], axis=1)
        for start in range(0, len(children), columns)
    ]
    block = np.concatenate(rows, axis=0) if len(rows) > 1 else rows[0]
    height, width = spec.shapes[level]
    want = (
        min(spec.side, height - row * spec.side),
        min(spec.side, width - col * spec.side),
    )
    if block.shape[:2] != want:
        raise RuntimeError(
            f"minerva-dask internal error: level {level} block {row},{col} is "
            f"{block.shape[:2]}, not {want}"
        )
    return _encode_block(block, spec, level, row * spec.side, col * spec.side)


def _encode_block(
    block: np.ndarray, spec: TileSpec, level: int, y0: int, x0: int
) -> tuple[list[Tile], np.ndarray | None]:
    tiles: list[Tile] = []
    nominal = spec.side
    while True:
        tiles.extend(_tiles_of(block, spec, level, y0, x0))
        if level + 1 == len(spec.shapes):
            return tiles, None
        block = downsample_2x(block)
        level, y0, x0, nominal = level + 1, y0 // 2, x0 // 2, nominal // 2
        if nominal % spec.tile:
            return tiles, block


def _tiles_of(block: np.ndarray, spec: TileSpec, level: int, y0: int, x0: int) -> list[Tile]:
    """Compressed tiles of a block whose origin ``(y0, x0)`` is on the tile grid; edge
    tiles padded with zeros to the full tile, as TIFF wants them."""
    tile = spec.tile
    encode = _encoder(spec.codec)
    args = dict(spec.codec_args)
    out: list[Tile] = []
    for ty in range(0, block.shape[0], tile):
        for tx in range(0, block.shape[1], tile):
            part = block[ty : ty + tile, tx : tx + tile]
            for page in range(spec.pages):
                pixels = part[:, :, page, :]
                if pixels.shape[:2] != (tile, tile):
                    full = np.zeros((tile, tile, spec.samples), pixels.dtype)
                    full[: pixels.shape[0], : pixels.shape[1]] = pixels
                    pixels = full
                if spec.samples == 1:
                    pixels = pixels[:, :, 0]
                pixels = np.ascontiguousarray(pixels)
                data = pixels.tobytes() if encode is None else bytes(encode(pixels, **args))
                out.append((level, page, (y0 + ty) // tile, (x0 + tx) // tile, data))
    return out


def _encoder(codec: str | None):
    if codec is None:
        return None
    import imagecodecs

    if codec == "zlib":  # what tifffile writes for ADOBE_DEFLATE: libdeflate if present
        deflate = getattr(imagecodecs, "DEFLATE", None)
        if deflate is not None and deflate.available:
            return imagecodecs.deflate_encode
        return imagecodecs.zlib_encode
    return getattr(imagecodecs, f"{codec}_encode")
