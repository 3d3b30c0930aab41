"""The public exports: ``to_png``, ``to_ome_tiff``, ``to_ome_zarr``, ``to_dzi``,
``to_dzi_groups`` and ``to_ome_tiff_planes``.

Each takes the user's ``client`` and dask compute options, has :mod:`.compute` make the
runner of the writer's tasks (or, for a PNG, the row blocks), and hands that to the writer
(:mod:`.writers`), which only writes. Writer modules import their libraries on first use.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from . import compute
from ._inputs import inputs_of
from .writers._meta import checked_blocks
from .writers.png import PNG_LEVEL, write_png

if TYPE_CHECKING:
    from .writers._meta import ExportResult, OutputMetadata

__all__ = ["to_dzi", "to_dzi_groups", "to_ome_tiff", "to_ome_tiff_planes", "to_ome_zarr", "to_png"]


def to_png(
    image: Any,
    path: str | os.PathLike[str],
    *,
    level: int = PNG_LEVEL,
    overwrite: bool = True,
    threads: int | None = None,
    client: Any = None,
    progress: bool = False,
    **compute_kwargs: Any,
) -> Path:
    """Compute ``image`` and write it as a PNG file at ``path``, atomically.

    Parameters
    ----------
    image
        A :class:`~minerva_dask.Rendering`, or a dask or numpy array ``(height, width, 3)``
        uint8 (axes ``y, x, rgb``). A lazy image is computed one row of chunks at a time
        and never held whole.
    path
        Output file. Written to a temporary file beside it, then renamed.
    level
        zlib compression level 0-9 (default :data:`~minerva_dask.writers.png.PNG_LEVEL`).
    overwrite
        Replace an existing file (default) or fail.
    threads
        Threads deflating (default: the machine's cores).
    client
        A ``distributed.Client`` to compute on (default: the threaded scheduler).
    progress
        Report chunks done on stderr.
    **compute_kwargs
        Passed to dask's ``compute`` (``scheduler=``...).

    >>> import tempfile, minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> rgb = md.render(src, md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,512,256"))
    >>> md.to_png(rgb, tempfile.mkdtemp() + "/crop.png").name
    'crop.png'
    """
    inputs = inputs_of(image)  # a Rendering's source, or its array's: never replaced
    compute.check_compute_options(client, compute_kwargs)
    if not (isinstance(image, np.ndarray) or hasattr(image, "chunks")):
        image = np.asarray(image)  # a Rendering or dask array as is; anything else numpy
    dtype = np.dtype(np.uint8) if hasattr(image, "chunk_task") else image.dtype
    client = client if client is not None else compute.default_client(compute_kwargs)
    rows = _rows(image, client, compute_kwargs, progress)  # lazy: computed as written
    return write_png(
        rows,
        path,
        shape=tuple(image.shape),
        dtype=dtype,
        inputs=inputs,
        level=level,
        overwrite=overwrite,
        threads=threads,
    )


def _rows(
    image: Any, client: Any, compute_kwargs: dict[str, Any], progress: bool
) -> Iterator[np.ndarray]:
    """``image`` as numpy row blocks, top to bottom: a Rendering's as it computes them best
    (:func:`.compute.row_blocks`), a dask array's one row of chunks at a time, in order,
    with two in flight; anything else is one block."""
    if hasattr(image, "chunk_task"):
        yield from compute.row_blocks(image, client, compute_kwargs, progress)
    elif hasattr(image, "chunks"):  # someone's array: a block not as declared is named,
        checked = checked_blocks(image)  # never joined (once the writer has checked it)
        yield from compute.array_row_blocks(checked, client, compute_kwargs, progress)
    else:
        yield np.asarray(image)


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
        ``deflate`` (default; level 4: zstd 3's ratio, as OME-Zarr's chunks, in about 60%
        of level 6's time), ``jpeg``, ``lzw``, ``zstd`` or ``none``.
    chunk
        Block side of every task (default: the image's chunk), rounded up to a multiple
        of the TIFF tile. The tile is the largest power of two from 16 to 512
        that exceeds neither the image's shorter side rounded up to 16 nor ``chunk``:
        libvips refuses to open a file whose tile is larger than an image of at most
        128 pixels a side (see :func:`~minerva_dask.writers.ome_tiff.tiff_tile`).
    client, prefetch
        A ``distributed.Client`` (default: threaded scheduler). On a client, ``prefetch``
        groups of level-0 blocks (each the blocks under one block of the next stage) in
        flight, or four blocks per worker thread if more; locally two blocks per thread.
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
    from .writers.ome_tiff import write_ome_tiff

    return write_ome_tiff(
        image,
        path,
        runner=compute.make_runner(client, compute_kwargs),
        compression=compression,
        chunk=chunk,
        prefetch=prefetch,
        progress=progress,
        overwrite=overwrite,
    )


def to_ome_tiff_planes(
    planes: Any,
    path: str | os.PathLike[str],
    *,
    channel_names: list[str] | tuple[str, ...] | None = None,
    metadata: OutputMetadata | None = None,
    compression: str = "deflate",
    chunk: int | None = None,
    client: Any = None,
    prefetch: int = 2,
    progress: bool = False,
    overwrite: bool = False,
    compute_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``(c, y, x)`` planes of an unsigned integer type (uint8, uint16, uint32) as
    a tiled, pyramidal OME-TIFF: one page per channel (``channel_names`` in the OME-XML),
    each with SubIFDs for its lower levels, the 2 x 2 means of the level above rounded
    half up (``(a + b + c + d + 2) // 4``; odd edges repeat their last pixel).

    ``planes`` may also be a :class:`~minerva_dask.raw.RawRegion` (``md.raw_region``):
    its planes, written with its metadata and channel names unless given.
    ``metadata``: name, pixel size, provenance and inputs (never overwritten). Other
    parameters as :func:`to_ome_tiff` (JPEG only for uint8).
    """
    from .writers.ome_tiff import write_ome_tiff_planes

    return write_ome_tiff_planes(
        planes,
        path,
        runner=compute.make_runner(client, compute_kwargs),
        channel_names=channel_names,
        metadata=metadata,
        compression=compression,
        chunk=chunk,
        prefetch=prefetch,
        progress=progress,
        overwrite=overwrite,
    )


def to_ome_zarr(
    image: Any,
    url: str | os.PathLike[str],
    *,
    version: str = "0.5",
    chunk: int | None = None,
    shard: int | None = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    client: Any = None,
    prefetch: int = 2,
    progress: bool = False,
    compute_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``image`` as a multiscale OME-Zarr at ``url`` (local path or fsspec URL).

    Parameters
    ----------
    image
        A :class:`~minerva_dask.Rendering`, or a dask/numpy ``(y, x, 3)`` uint8 array.
    version
        ``"0.5"`` (zarr v3, default) or ``"0.4"`` (zarr v2).
    chunk
        Chunk side in pixels (default: the image's dask chunk, made even).
    shard
        Chunks per shard side (zarr v3 sharding; one task writes one whole shard).
        Default :data:`~minerva_dask.writers.ome_zarr.DEFAULT_SHARD` for 0.5, unsharded (1) for 0.4.
    overwrite, resume
        ``overwrite``: replace an existing store once the new one is complete (a remote
        store is never replaced: delete it first). ``resume``: continue an interrupted
        export of the same render (chunks already written are skipped and counted); a
        store that is not one is refused, untouched. An interrupted local export with
        ``overwrite`` may be resumed without it: it was allowed to replace the target.
    client, prefetch
        A ``distributed.Client`` to compute on (default: the threaded scheduler), and how
        many rows of chunks may be in flight.
    progress
        Report tiles done, rate and time left on stderr.

    >>> import tempfile, minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,2048,1024&max_size=5000")
    >>> rgb = md.render(src, req, align="output", chunk_size=512)
    >>> result = md.to_ome_zarr(rgb, tempfile.mkdtemp() + "/crop.ome.zarr")
    >>> result.shape, result.levels
    ((1024, 2048), 3)
    """
    from .writers.ome_zarr import write_ome_zarr

    return write_ome_zarr(
        image,
        url,
        runner=compute.make_runner(client, compute_kwargs),
        version=version,
        chunk=chunk,
        shard=shard,
        storage_options=storage_options,
        overwrite=overwrite,
        resume=resume,
        prefetch=prefetch,
        progress=progress,
    )


def to_dzi(
    image: Any,
    path: str | os.PathLike[str],
    *,
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpeg",
    quality: int = 75,
    overwrite: bool = False,
    resume: bool = False,
    client: Any = None,
    progress: bool = False,
    compute_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``image`` (a :class:`~minerva_dask.Rendering`, or a ``(y, x, 3)`` uint8
    dask/numpy array) as a Deep Zoom pyramid: ``path`` (``NAME.dzi``) and ``NAME_files/``.

    ``overwrite`` replaces an existing pyramid once the new one is complete; ``resume``
    continues an interrupted export of the same render. ``client``: a
    ``distributed.Client`` whose workers can write to the output's folder.

    >>> import tempfile, minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,2048,1024&max_size=600")
    >>> result = md.to_dzi(md.render(src, req), tempfile.mkdtemp() + "/crop.dzi")
    >>> result.shape, result.levels
    ((256, 512), 10)
    """
    from .writers.dzi import write_dzi

    return write_dzi(
        image,
        path,
        runner=compute.make_runner(client, compute_kwargs),
        tile_size=tile_size,
        overlap=overlap,
        tile_format=tile_format,
        quality=quality,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
    )


def to_dzi_groups(
    groups: Mapping[str, Any],
    folder: str | os.PathLike[str],
    *,
    title: str | None = None,
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpeg",
    quality: int = 75,
    overwrite: bool = False,
    resume: bool = False,
    client: Any = None,
    progress: bool = False,
    compute_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write each of ``groups`` (``{name: Rendering or (y, x, 3) uint8 array}``) as a Deep
    Zoom pyramid into ``folder``, with ``index.html`` to view them offline.

    ``title`` defaults to the image's name. Other arguments as :func:`to_dzi`. The
    result's ``shape`` and ``levels`` are the first group's; counts are of all groups.
    """
    from .writers.dzi_viewer import write_dzi_groups

    return write_dzi_groups(
        groups,
        folder,
        runner=compute.make_runner(client, compute_kwargs),
        title=title,
        tile_size=tile_size,
        overlap=overlap,
        tile_format=tile_format,
        quality=quality,
        overwrite=overwrite,
        resume=resume,
        progress=progress,
    )
