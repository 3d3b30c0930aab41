"""Pyramidal OME-TIFF output, streamed: one writer, tiles in order, bands computed ahead.

Level 0 is computed a band (a row of chunks) at a time, at most ``prefetch`` bands ahead
of the writer, and written as tiles as it arrives. Each band is also downsampled into a
temporary scratch folder beside the output, from which the lower levels (SubIFDs, 2 x 2
means of the level above, as in the OME-Zarr writer) are streamed in turn. Scratch levels
are stored in row bands of ``side / 2`` rows, one raw file each, written whole and once,
synchronously from the writer's thread (so an interrupted export leaves no write in
flight that could outlive the clean-up). Memory stays a few
bands, whatever the slide size. The file appears under its name only when complete.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import dask
import numpy as np

from ..errors import OutputError
from ._atomic import check_output_path, create_temp_beside, disk_full, disk_full_error
from ._bands import Progress, compute_in_order
from ._meta import ExportResult, OutputMetadata, rgb_grid
from ._pyramid import downsample_2x, pyramid_shapes

__all__ = ["COMPRESSIONS", "to_ome_tiff"]

COMPRESSIONS = {
    "deflate": ("zlib", {"level": 6}),
    "jpeg": ("jpeg", {"level": 90}),
    "lzw": ("lzw", None),
    "zstd": ("zstd", {"level": 3}),
    "none": (None, None),
}
_TIFF_TILE = 512  # the largest TIFF tile side; the smallest is 16 (the TIFF rule)
_COMPRESS_PASS_BYTES = 32 * 2**20


def to_ome_tiff(
    image: Any,
    path: str | os.PathLike[str],
    *,
    compression: str = "deflate",
    chunk: int | None = None,
    client: Any = None,
    prefetch: int = 2,
    progress: bool = False,
    overwrite: bool = False,
    compute_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``image`` as a tiled, pyramidal (SubIFD) RGB OME-TIFF at ``path``.

    Parameters
    ----------
    image
        A :class:`~minerva_dask.Rendering`, or a dask/numpy ``(y, x, 3)`` uint8 array.
    compression
        ``deflate`` (default), ``jpeg``, ``lzw``, ``zstd`` or ``none``.
    chunk
        Rows per band and dask chunk side (default: the image's chunk), rounded up to a
        multiple of the TIFF tile. The tile is the largest power of two from 16 to 512
        that exceeds neither the image's shorter side rounded up to 16 nor ``chunk``:
        libvips refuses to open a file whose tile is larger than an image of at most
        128 pixels a side (see :func:`tiff_tile`).
    client, prefetch
        A ``distributed.Client`` (default: threaded scheduler) and bands in flight.
    progress
        Report tiles done, rate and time left on stderr.
    overwrite
        Replace an existing file (default: refuse it, as :func:`to_ome_zarr` does); the
        new file replaces the old one only when complete.

    >>> import tempfile, minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,2048,1024&max_size=5000")
    >>> rgb = md.render(src, req, align="output", chunk_size=512)
    >>> result = md.to_ome_tiff(rgb, tempfile.mkdtemp() + "/crop.ome.tif")
    >>> result.shape, result.levels
    ((1024, 2048), 3)
    """
    import tifffile

    started = time.perf_counter()
    if compression not in COMPRESSIONS:
        raise OutputError(
            f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}"
        )
    meta = OutputMetadata.of(image)
    target = check_output_path(path, overwrite=overwrite, inputs=meta.inputs)
    data, side = rgb_grid(image, chunk, multiple=16)  # TIFF tiles: multiples of 16
    height, width = data.shape[:2]
    tile = tiff_tile(height, width, side)
    if side % tile:  # bands of whole tile rows: the side grows to a multiple of the tile
        data, side = rgb_grid(data, -(-side // tile) * tile, multiple=tile)
    if side % tile:
        raise RuntimeError(f"minerva-dask internal error: tile {tile} does not divide {side}")
    shapes = pyramid_shapes(height, width, tile)
    codec, codec_args = COMPRESSIONS[compression]
    total = sum(math.ceil(h / tile) * math.ceil(w / tile) for h, w in shapes)
    report = Progress(total, "OME-TIFF", enabled=progress)
    scratch = partial = None
    try:
        scratch = tempfile.mkdtemp(prefix=f".{target.name[:200]}.levels-", dir=target.parent)
        fd, partial = create_temp_beside(target)  # mode 0666 less the umask, as a new file
        os.close(fd)
        levels = {  # rows of side / 2: one band's 2 x 2 mean, whole width
            str(index): _Scratch(os.path.join(scratch, str(index)), (h, w), side // 2)
            for index, (h, w) in enumerate(shapes[1:], start=1)
        }
        options: dict[str, Any] = dict(
            dtype=np.uint8,
            tile=(tile, tile),
            photometric="rgb",
            compression=codec,
            compressionargs=codec_args,
            maxworkers=os.cpu_count() or 2,
            # tifffile compresses this many bytes per pass (its default is 512 MB): the
            # writer's memory is bounded by it, not by the slide
            buffersize=_COMPRESS_PASS_BYTES,
        )
        bigtiff = height * width * 3 * 4 // 3 > 2**32 - 2**25  # pyramid + headroom > 4 GB
        with tifffile.TiffWriter(partial, bigtiff=bigtiff, ome=True) as writer:
            metadata = {"axes": "YXS", "Name": meta.name, "Description": meta.description()}
            if meta.pixel_size_um:
                metadata.update(
                    PhysicalSizeX=meta.pixel_size_um[0],
                    PhysicalSizeXUnit="µm",
                    PhysicalSizeY=meta.pixel_size_um[1],
                    PhysicalSizeYUnit="µm",
                )
            bands = _level0_bands(
                data, levels if len(shapes) > 1 else None, client, prefetch, compute_kwargs
            )
            writer.write(
                _tiles(bands, tile, report),
                shape=(height, width, 3),
                subifds=len(shapes) - 1,
                metadata=metadata,
                **_resolution(meta, 0),
                **options,
            )
            for index in range(1, len(shapes)):
                below = levels[str(index + 1)] if index + 1 < len(shapes) else None
                writer.write(
                    _tiles(_stored_bands(levels[str(index)], side, below), tile, report),
                    shape=(*shapes[index], 3),
                    subfiletype=1,
                    **_resolution(meta, index),
                    **options,
                )
        _fsync(partial)
        os.replace(partial, target)
    except BaseException as exc:
        if partial is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        if disk_full(exc):  # in tifffile, the scratch, the final fsync or rename
            raise disk_full_error(target) from None
        raise
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    return ExportResult(
        str(target),
        (height, width),
        len(shapes),
        total,
        0,
        target.stat().st_size,
        time.perf_counter() - started,
    )


def tiff_tile(height: int, width: int, side: int) -> int:
    """The TIFF tile side for an image of ``height`` x ``width`` written in bands of
    ``side`` rows (a multiple of 16): the largest power of two from 16 to 512 that
    exceeds neither the image's shorter side rounded up to 16 nor ``side``.

    libvips (pyvips, ``tiff2vips``) refuses a tile larger than an image of at most 128
    pixels a side ("tile size out of range"), so a small image gets a small tile; a
    power of two divides every larger one, and the band side is then made a multiple of
    it, so each band is whole rows of tiles.

    >>> tiff_tile(64, 64, 1024), tiff_tile(100, 5000, 1024), tiff_tile(9000, 9000, 1024)
    (64, 64, 512)
    >>> tiff_tile(1, 1, 16), tiff_tile(9000, 9000, 48)
    (16, 32)
    """
    limit = min(-(-min(height, width) // 16) * 16, side, _TIFF_TILE)
    return 1 << max(4, limit.bit_length() - 1)


def _fsync(path: str | os.PathLike[str]) -> None:
    """Flush a written file to the disk before it is renamed into place (a full disk or
    a failing device shows here, not after the old output is gone)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _resolution(meta: OutputMetadata, level: int) -> dict[str, Any]:
    """TIFF resolution tags (pixels per centimetre) of a level, when the size is known."""
    if not meta.pixel_size_um:
        return {}
    px, py = (v * 2**level for v in meta.pixel_size_um)
    return {"resolution": (1e4 / px, 1e4 / py), "resolutionunit": "CENTIMETER"}


def _level0_bands(
    data: Any, levels: Any, client: Any, prefetch: int, compute_kwargs: dict[str, Any] | None
) -> Iterator[list[np.ndarray]]:
    """Rows of level-0 chunks in order (a list of blocks each, never concatenated), each
    block also downsampled into the scratch level 1."""
    blocks = data.to_delayed(optimize_graph=True)
    jobs = (list(blocks[row, :, 0]) for row in range(blocks.shape[0]))

    def run(job: Any) -> list[np.ndarray]:
        return list(dask.compute(*job, **(compute_kwargs or {})))

    y = 0
    for row in compute_in_order(jobs, client=client, prefetch=prefetch, compute=run):
        if levels is not None:
            half = np.concatenate([downsample_2x(block) for block in row], axis=1)
            levels["1"].write(y // 2, half)
        y += row[0].shape[0]
        yield row


class _Scratch:
    """A scratch level ``(height, width, 3)`` uint8: row bands of ``rows`` rows, each a
    raw file written whole, once. A write must be exactly one band (else an internal
    error): no band is ever shared by two writes."""

    def __init__(self, folder: str, shape: tuple[int, int], rows: int) -> None:
        os.mkdir(folder)
        self.folder, self.rows = folder, rows
        self.shape = (*shape, 3)

    def write(self, y: int, band: np.ndarray) -> None:
        last = y + band.shape[0] == self.shape[0]
        if (
            y % self.rows
            or (band.shape[0] != self.rows and not last)
            or band.shape[1:] != self.shape[1:]
        ):
            raise RuntimeError(
                f"minerva-dask internal error: scratch rows {y}:{y + band.shape[0]} "
                f"{band.shape} are not one stored band of {self.rows} rows"
            )
        with open(os.path.join(self.folder, str(y // self.rows)), "wb") as fh:
            fh.write(memoryview(np.ascontiguousarray(band)))  # a full disk: ENOSPC here

    def __getitem__(self, rows: slice) -> np.ndarray:
        """Rows ``start:stop`` (band-aligned start) as one array."""
        start, stop, _ = rows.indices(self.shape[0])
        bands = []
        for index in range(start // self.rows, -(-stop // self.rows)):
            band = np.fromfile(os.path.join(self.folder, str(index)), np.uint8)
            bands.append(band.reshape(-1, *self.shape[1:]))
        return np.concatenate(bands)[start % self.rows : start % self.rows + stop - start]


def _stored_bands(level: _Scratch, side: int, below: Any) -> Iterator[list[np.ndarray]]:
    """Bands of a scratch level (``side`` rows: two of its chunks, whole tile rows), each
    downsampled into one chunk of the next."""
    for y in range(0, level.shape[0], side):
        band = level[y : y + side]
        if below is not None:
            below.write(y // 2, downsample_2x(band))
        yield [band]


def _tiles(bands: Iterator[list[np.ndarray]], tile: int, report: Progress) -> Iterator[np.ndarray]:
    """Tiles in TIFF order (rows of tiles, left to right) from bands of whole tile rows,
    each band a list of blocks side by side."""
    for blocks in bands:
        for y in range(0, blocks[0].shape[0], tile):
            for block in blocks:
                for x in range(0, block.shape[1], tile):
                    report.advance(1)  # before the yield: the writer stops at the last tile
                    yield np.ascontiguousarray(block[y : y + tile, x : x + tile])
