"""Pyramidal OME-TIFF output: the pixel work on the workers, only tile bytes here.

Every task renders (or gathers) a block, compresses its tiles and those of the lower
levels it can make by itself, and returns compressed bytes and one small downsampled block
for the task above it (see :mod:`._tiff_encode`, :mod:`._tiff_run`): lower levels (SubIFDs,
2 x 2 means of the level above, as in the OME-Zarr writer) are made on the workers from
those, chunk-aligned, never from a copy of a whole level. This process appends the bytes
to the file as they come back, in a fixed order, with a bounded number of blocks in
flight, and writes the IFDs last (:mod:`._tiff_file`): its memory is flat in the slide's
width and height. The file appears under its name only when complete.

Memory (``side``: the block side; ``T``: threads; ``B``: bytes of one rendered block's
pixels, ``side**2 * pages * samples * itemsize``; ``R``: the render working set of one
level-0 chunk, ``side**2`` pixels of every channel read plus the composite's buffers).
Each worker thread runs one task at a time: ``R + 4/3 B`` plus that block's compressed
tiles, so a worker peaks near ``T x (R + 4/3 B)`` plus the results waiting for the client
(at most the window: ``max(prefetch x fan**2, 4 x all threads)`` blocks' compressed tiles,
``fan = 2**levels per stage``) and the small blocks waiting for their parent (at most
``fan**2`` of ``B / fan**2`` each: one block's worth per stage). The writing process:
that window and two integers per tile; with the threaded scheduler it runs the tasks
too, ``T`` blocks at once with ``T`` more done and waiting. E.g. 8 uint16 channels, side
1024, RGB: ``R`` about 60 MB, ``B`` 3 MB.

``(y, x, 3)`` uint8 renderings are written as one RGB page (:func:`write_ome_tiff`);
``(c, y, x)`` unsigned integer planes as ``c`` pages, one per channel, each with its
SubIFDs (:func:`write_ome_tiff_planes`).
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Any

import numpy as np

from .._memory import reuse_freed_memory
from ..errors import OutputError
from ._atomic import (
    check_output_path,
    create_temp_beside,
    disk_full,
    disk_full_error,
    output_lock,
)
from ._meta import (
    ExportResult,
    OutputMetadata,
    check_chunk,
    check_grid,
    check_pixels,
    regular_chunks,
    rgb_grid,
)
from ._progress import Progress
from ._pyramid import pyramid_shapes
from ._runner import Runner

__all__ = ["COMPRESSIONS", "tiff_tile", "write_ome_tiff", "write_ome_tiff_planes"]

COMPRESSIONS = {
    "deflate": ("zlib", {"level": 4}),  # libdeflate 4: zstd 3's ratio, ~60% of 6's time
    "jpeg": ("jpeg", {"level": 90}),
    "lzw": ("lzw", None),
    "zstd": ("zstd", {"level": 3}),
    "none": (None, None),
}
_TIFF_TILE = 512  # the largest TIFF tile side; the smallest is 16 (the TIFF rule)
CLASSIC_LIMIT = 2**32 - 2**25  # raw pyramid bytes above which the file is a BigTIFF


def write_ome_tiff(
    image: Any,
    path: str | os.PathLike[str],
    *,
    runner: Runner,
    compression: str = "deflate",
    chunk: int | None = None,
    prefetch: int = 2,
    progress: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``image`` as a tiled, pyramidal (SubIFD) RGB OME-TIFF at ``path``, its tasks
    run by ``runner``; the writer of :func:`minerva_dask.to_ome_tiff` (parameters there)."""
    started = time.perf_counter()
    _check_compression(compression)
    meta = OutputMetadata.of(image)
    target = check_output_path(path, overwrite=overwrite, inputs=meta.inputs)
    # TIFF tiles: multiples of 16
    data, side = rgb_grid(image, chunk, multiple=16, target=target)
    tile = tiff_tile(data.shape[0], data.shape[1], side)
    if side % tile:  # blocks of whole tiles: the side grows to a multiple of the tile
        data, side = rgb_grid(data, -(-side // tile) * tile, multiple=tile, target=target)
    return _export(
        data,
        "yxs",
        side,
        tile,
        target,
        meta,
        None,
        compression,
        runner,
        prefetch,
        progress,
        started,
        overwrite,
    )


def write_ome_tiff_planes(
    planes: Any,
    path: str | os.PathLike[str],
    *,
    runner: Runner,
    channel_names: list[str] | tuple[str, ...] | None = None,
    metadata: OutputMetadata | None = None,
    compression: str = "deflate",
    chunk: int | None = None,
    prefetch: int = 2,
    progress: bool = False,
    overwrite: bool = False,
) -> ExportResult:
    """Write ``(c, y, x)`` unsigned integer planes as a pyramidal OME-TIFF, one page per
    channel, its tasks run by ``runner``; the writer of
    :func:`minerva_dask.exports.to_ome_tiff_planes` (parameters there). ``planes`` may be
    a :class:`~minerva_dask.raw.RawRegion`: its planes, with its metadata and channel
    names unless given."""
    import dask.array as da

    started = time.perf_counter()
    _check_compression(compression)
    if hasattr(planes, "provenance") and hasattr(planes, "data"):  # a RawRegion
        metadata = metadata or OutputMetadata.of(planes)
        if channel_names is None and metadata.channels:
            channel_names = [name for name, _, _ in metadata.channels]
        planes = planes.data
    meta = metadata or OutputMetadata.of(planes)  # an array of a raw region: its inputs
    target = check_output_path(path, overwrite=overwrite, inputs=meta.inputs)
    check_chunk(chunk, target)
    if not isinstance(planes, da.Array):
        planes = np.asarray(planes)
    check_pixels(planes.shape, planes.dtype, target, "planes")
    if not isinstance(planes, da.Array):
        planes = da.from_array(planes, chunks=(planes.shape[0], chunk or 1024, chunk or 1024))
    if compression == "jpeg" and planes.dtype != np.uint8:
        raise OutputError(f"cannot write {target}: JPEG needs uint8 planes, got {planes.dtype}")
    names = list(channel_names) if channel_names is not None else None
    if names is not None and len(names) != planes.shape[0]:
        raise OutputError(
            f"cannot write {target}: {len(names)} channel names for {planes.shape[0]} planes"
        )
    _, height, width = planes.shape
    side = -(-(chunk or max(planes.chunks[1][0], planes.chunks[2][0])) // 16) * 16
    tile = tiff_tile(height, width, side)
    side = -(-side // tile) * tile
    wanted = ((planes.shape[0],), regular_chunks(height, side), regular_chunks(width, side))
    if planes.chunks != wanted:
        planes = planes.rechunk(wanted)
    check_grid(planes.chunks[1:], side)
    return _export(
        planes,
        "cyx",
        side,
        tile,
        target,
        meta,
        names,
        compression,
        runner,
        prefetch,
        progress,
        started,
        overwrite,
    )


def _check_compression(compression: str) -> None:
    if compression not in COMPRESSIONS:
        raise OutputError(
            f"unknown compression {compression!r}; choose one of {', '.join(COMPRESSIONS)}"
        )


def _export(
    data: Any,
    layout: str,
    side: int,
    tile: int,
    target: Any,
    meta: OutputMetadata,
    channel_names: list[str] | None,
    compression: str,
    runner: Runner,
    prefetch: int,
    progress: bool,
    started: float,
    overwrite: bool,
) -> ExportResult:
    """The writer core, for either layout: tasks, then tiles, then IFDs, then rename."""
    from ._tiff_encode import TileSpec
    from ._tiff_file import TiffTiles
    from ._tiff_run import run_stages

    if runner.renders_here:  # this process renders: its buffers reused (_memory), from block 1
        reuse_freed_memory()
    if side % tile:
        raise RuntimeError(f"minerva-dask internal error: tile {tile} does not divide {side}")
    if layout == "cyx":
        pages, samples, (height, width) = data.shape[0], 1, data.shape[1:]
    else:
        pages, samples, (height, width) = 1, 3, data.shape[:2]
    dtype = np.dtype(data.dtype)
    shapes = pyramid_shapes(height, width, tile)
    codec, codec_args = COMPRESSIONS[compression]
    args = dict(codec_args or {})
    if codec == "jpeg" and samples == 3:  # as tifffile writes RGB JPEG: YCbCr, 2 x 2
        args.update(subsampling=(2, 2), colorspace="RGB", outcolorspace="YCBCR")
    spec = TileSpec(
        tile, side, tuple(shapes), pages, samples, dtype.str, codec, tuple(args.items()), layout
    )
    total = pages * sum(-(-h // tile) * -(-w // tile) for h, w in shapes)
    report = Progress(total, "OME-TIFF", enabled=progress)
    raw = height * width * samples * pages * dtype.itemsize
    bigtiff = raw * 4 // 3 > CLASSIC_LIMIT  # pyramid + headroom > 4 GB
    with output_lock(target):  # one export of this file at a time; what is there now
        check_output_path(target, overwrite=overwrite, inputs=meta.inputs)
        partial = None
        try:
            fd, partial = create_temp_beside(target)  # mode 0666 less the umask, as a new file
            with os.fdopen(fd, "wb") as fh:
                sink = TiffTiles(fh, shapes, tile, pages, bigtiff=bigtiff)

                def write(item: Any) -> None:
                    sink.add(*item)
                    report.advance(1)

                run_stages(spec, data, write, runner=runner, prefetch=prefetch)
                sink.close(
                    lambda level: _tags(spec, meta, codec, level),
                    _ome_xml(spec, meta, channel_names),
                )
                os.fsync(fh.fileno())  # a full disk or failing device shows here, not later
            os.replace(partial, target)
        except BaseException as exc:
            if partial is not None:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(partial)
            if disk_full(exc):  # in a write, the final fsync or rename
                raise disk_full_error(target) from None
            raise
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


def _tags(
    spec: Any, meta: OutputMetadata, codec: str | None, level: int
) -> dict[int, tuple[int, Any]]:
    """A level's tags besides its layout, as tifffile writes them (its default resolution
    included)."""
    from ._tiff_encode import CODECS
    from ._tiff_file import ASCII, RATIONAL, SHORT

    bits = np.dtype(spec.dtype).itemsize * 8
    rgb = spec.samples == 3
    tags: dict[int, tuple[int, Any]] = {
        258: (SHORT, [bits] * spec.samples),
        259: (SHORT, [CODECS[codec]]),
        262: (SHORT, [2 if rgb else 1]),  # RGB, or MinIsBlack
        277: (SHORT, [spec.samples]),
        282: (RATIONAL, [(1, 1)]),
        283: (RATIONAL, [(1, 1)]),
        284: (SHORT, [1]),  # contiguous samples
        296: (SHORT, [1]),  # no unit
        305: (ASCII, "minerva-dask"),
    }
    if meta.pixel_size_um:  # pixels per centimetre of the level
        px, py = (v * 2**level for v in meta.pixel_size_um)
        tags.update({282: (RATIONAL, [1e4 / px]), 283: (RATIONAL, [1e4 / py]), 296: (SHORT, [3])})
    if codec == "jpeg" and rgb:
        tags.update(
            {
                262: (SHORT, [6]),  # YCbCr, subsampled 2 x 2, as tifffile writes it
                530: (SHORT, [2, 2]),
                532: (RATIONAL, [(0, 1), (255, 1), (128, 1), (255, 1), (128, 1), (255, 1)]),
            }
        )
    return tags


def _ome_xml(spec: Any, meta: OutputMetadata, channel_names: list[str] | None) -> str:
    """The OME-XML of the first IFD, as tifffile's own OME writer makes it."""
    import tifffile

    height, width = spec.shapes[0]
    metadata: dict[str, Any] = {"Name": meta.name, "Description": meta.description()}
    if meta.pixel_size_um:
        metadata.update(
            PhysicalSizeX=meta.pixel_size_um[0],
            PhysicalSizeXUnit="µm",
            PhysicalSizeY=meta.pixel_size_um[1],
            PhysicalSizeYUnit="µm",
        )
    if spec.samples == 3:
        shape, stored, axes = (height, width, 3), (1, 1, 1, height, width, 3), "YXS"
    else:
        shape, axes = (spec.pages, height, width), "CYX"
        stored = (spec.pages, 1, 1, height, width, 1)
        if meta.channels:  # a raw export: each plane's name and colour
            metadata["Channel"] = meta.ome_channels()
        elif channel_names is not None:
            metadata["Channel"] = {"Name": list(channel_names)}
    ome = tifffile.OmeXml()
    ome.addimage(np.dtype(spec.dtype), shape, stored, axes=axes, **metadata)
    return ome.tostring(declaration=True)
