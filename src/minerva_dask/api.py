"""``crop``: open, render and write in one call. The one place where the parts meet."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .compute import check_cluster_options, compute_context, compute_options
from .errors import OutputError, RequestError
from .graph import Rendering, render  # noqa: F401  (Rendering: importable from here)
from .plan import MAX_PIXELS, MAX_READ_PIXELS, PNG_MAX_PIXELS
from .request import RenderRequest
from .request_url import default_request, parse_request
from .sources import Source, open_source
from .writers import check_format_options, output_format

__all__ = ["CropResult", "compute_context", "crop", "describe_plan", "output_format"]

logger = logging.getLogger(__name__)

EXPORT_CHUNK = 1024  # chunk side of OME-TIFF / OME-Zarr exports: a regular output grid


@dataclass(frozen=True, slots=True)
class CropResult:
    """What ``crop`` wrote: path, output ``(height, width)``, level read, pyramid levels
    written, bytes, seconds, and chunks skipped by a resumed export."""

    path: str
    shape: tuple[int, int]
    level: int
    downsample: tuple[float, float]
    size_bytes: int
    elapsed_s: float
    levels: int = 1
    chunks_skipped: int = 0
    request: Any = None  # the RenderRequest written (auto windows filled in)


def crop(
    request: RenderRequest | str | None,
    output: str | os.PathLike[str],
    *,
    image: str | os.PathLike[str] | Source | None = None,
    omero: str | None = None,
    minerva: str | None = None,
    storage_options: dict[str, Any] | None = None,
    source_options: dict[str, Any] | None = None,
    output_storage_options: dict[str, Any] | None = None,
    preset: str = "linear",
    gamma: float | None = None,
    background: str | Sequence[int] = "black",
    max_size: int | None = None,
    level_rule: str = "general",
    max_pixels: int | None = None,
    max_read_pixels: int = MAX_READ_PIXELS,
    scheduler: Any = None,
    local_cluster: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
    format: str | None = None,
    overwrite: bool | None = None,
    resume: bool = False,
    compression: str = "deflate",
    zarr_version: str = "0.5",
    shard: int | None = None,
    chunk: int = EXPORT_CHUNK,
    png_level: int | None = None,
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpeg",
    tile_quality: int = 75,
    raw: bool = False,
    auto_windows: tuple[float, float] | None = None,
) -> CropResult:
    """Render ``request`` from ``image`` and write it to ``output``.

    Parameters
    ----------
    request
        A :class:`RenderRequest`, an OMERO.figure URL, or ``None`` for the image's own
        channel defaults over the whole image.
    output
        Output file or store; the format follows the name (``.png``, ``.ome.tif``,
        ``.ome.tiff``, ``.ome.zarr``, ``.zarr``, ``.dzi``) or ``format``.
    image, omero, minerva, storage_options, source_options
        The image (one of the three): a path or URL to open, or an open source; an
        OMERO.web server URL, the image id taken from the request's path; a Minerva image
        uuid. Neither: the server of a full OMERO.figure URL. ``storage_options`` are a
        file's fsspec options; ``source_options`` go to the source opened (``mode=``,
        ``verify=``, ``quality=`` ...). See :func:`minerva_dask.open_source`.
    max_size
        Overrides the request's ``max_size``.
    level_rule
        ``"general"`` or ``"omero-figure"`` (see :func:`minerva_dask.graph.plan_render`).
    max_pixels
        Largest output, in pixels, before anything is read; default 2^31 - 1 for PNG
        (what decoders accept) and 2^40 for OME-TIFF and OME-Zarr. Raise it for a larger
        output (mostly with ``level_rule="omero-figure"`` or a huge ``max_size``).
    max_read_pixels
        Largest number of level pixels that a level reduced on the fly may read
        (default 2^34; see :func:`minerva_dask.graph.plan_render`).
    scheduler, local_cluster, memory_limit
        Where to compute (see :func:`compute_context`); the threaded scheduler by default.
    progress
        Report progress on stderr.
    overwrite
        Replace an existing output. Default: yes for PNG, no for OME-TIFF and OME-Zarr.
    resume
        OME-Zarr: continue an interrupted export, skipping chunks already written.
    compression, zarr_version, chunk
        OME-TIFF compression; OME-Zarr NGFF version (``"0.5"`` or ``"0.4"``); chunk side.
    shard
        OME-Zarr: chunks per shard side (default 4 for 0.5, unsharded for 0.4).
    png_level
        PNG zlib level 0-9 (default :data:`minerva_dask.writers.png.PNG_LEVEL`, 3).
    tile_size, overlap, tile_format, tile_quality
        Deep Zoom (``.dzi``): tile side and overlap (254 and 1, as pyvips), ``"jpeg"`` or
        ``"png"`` tiles, JPEG quality 1-100 (75); see :func:`minerva_dask.to_dzi`.
    raw
        Write the shown channels unrendered (:func:`minerva_dask.raw_region`): the source's
        dtype, one plane per channel, names, colours and windows in the metadata.
        OME-TIFF or OME-Zarr only; not from OMERO (its tiles are rendered).
    auto_windows
        ``(low, high)`` percentiles: each shown channel's window from a coarse overview
        (:func:`minerva_dask.auto_contrast.with_auto_windows`); the result's ``request``
        holds the windows chosen.

    Other arguments are those of :func:`minerva_dask.render`.

    >>> import tempfile, minerva_dask as md
    >>> out = tempfile.mkdtemp() + "/figure.png"
    >>> result = md.crop("/0/0/0/?c=1|600:24000$0000FF&region=0,0,4096,3072&max_size=512", out,
    ...                  image=md.demo_image_path())
    >>> result.shape, result.level
    ((384, 512), 3)
    """
    started = time.perf_counter()
    _check_arguments(request, output)
    check_cluster_options(scheduler, local_cluster, memory_limit)  # before any work
    fmt = output_format(output, format)
    if png_level is not None and fmt != "png":
        raise OutputError(f"png_level applies to PNG output, not {fmt} ({output})")
    if shard is not None and fmt != "ome-zarr":
        raise OutputError(f"shard (CLI: --shard) applies to OME-Zarr output, not {fmt} ({output})")
    check_format_options(
        fmt,
        output,
        compression=compression,
        zarr_version=zarr_version,
        resume=resume,
        tile_size=tile_size,
        overlap=overlap,
        tile_format=tile_format,
        tile_quality=tile_quality,
    )
    overwrite = (fmt == "png") if overwrite is None else overwrite
    if raw:
        from ._raw_export import check_raw_options

        check_raw_options(fmt, preset, gamma, background)
    if fmt == "png":
        from .writers._atomic import check_output_path

        check_output_path(output, overwrite=overwrite)
    if not isinstance(request, RenderRequest | None):  # a URL, or refused in one line
        request = parse_request(request)
    source = open_for_request(
        request,
        image=image,
        omero=omero,
        minerva=minerva,
        storage_options=storage_options,
        **(source_options or {}),
    )
    if request is None:
        request = default_request(source.info)
    if max_size is not None:
        request = replace(request, max_size=max_size)
    if auto_windows is not None:  # percentiles (low, high) of a coarse overview
        from .auto_contrast import with_auto_windows

        request = with_auto_windows(source, request, auto_windows)
    export = fmt != "png"
    if fmt == "dzi":  # the rendering's blocks are the Deep Zoom tasks' blocks
        from .writers.dzi import DziOptions

        chunk = DziOptions(tile_size, overlap, tile_format, tile_quality).side
    if max_pixels is None:
        max_pixels = MAX_PIXELS if export else PNG_MAX_PIXELS
    if raw:  # the same plan, the source's planes instead of the composite
        from .raw import raw_region

        rendering: Any = raw_region(
            source,
            request,
            level_rule=level_rule,
            chunk_size=chunk,
            max_pixels=max_pixels,
            max_read_pixels=max_read_pixels,
        )
    else:
        rendering = render(
            source,
            request,
            preset=preset,
            gamma=gamma,
            background=background,
            level_rule=level_rule,
            align="output" if export else "tiles",
            chunk_size=chunk if export else None,
            max_pixels=max_pixels,
            max_read_pixels=max_read_pixels,
        )
    from .writers._atomic import check_not_input

    check_not_input(output, rendering.inputs)  # the writers check again, before writing
    logger.info("%s", describe_plan(rendering))
    with compute_context(
        scheduler,
        local_cluster=local_cluster,
        memory_limit=memory_limit,
    ) as client:
        options = compute_options(source, {})
        if fmt == "png":
            from .exports import to_png
            from .writers.png import PNG_LEVEL

            path = to_png(
                rendering,
                output,
                level=PNG_LEVEL if png_level is None else png_level,
                overwrite=overwrite,
                client=client,
                progress=progress,
            )
            return CropResult(
                str(path),
                rendering.shape[:2],
                rendering.level,
                rendering.downsample,
                Path(path).stat().st_size,
                time.perf_counter() - started,
                request=request,
            )
        if raw:
            from ._raw_export import write_raw

            result = write_raw(
                rendering,
                output,
                fmt,
                chunk=chunk,
                client=client,
                progress=progress,
                overwrite=overwrite,
                compute_kwargs=options,
                compression=compression,
                version=zarr_version,
                shard=shard,
                resume=resume,
                storage_options=output_storage_options,
            )
        elif fmt == "ome-tiff":
            from functools import partial

            from .exports import to_ome_tiff

            write = partial(
                to_ome_tiff,
                rendering,
                compression=compression,
                chunk=chunk,
                client=client,
                progress=progress,
                overwrite=overwrite,
                compute_kwargs=options,
            )
            from .writers._upload import to_file  # a URL: written here, uploaded whole

            result = to_file(
                write,
                output,
                inputs=tuple(rendering.inputs),
                storage_options=output_storage_options,
                overwrite=overwrite,
            )
        elif fmt == "dzi":
            from .exports import to_dzi

            result = to_dzi(
                rendering,
                output,
                tile_size=tile_size,
                overlap=overlap,
                tile_format=tile_format,
                quality=tile_quality,
                overwrite=overwrite,
                resume=resume,
                client=client,
                progress=progress,
                compute_kwargs=options,
            )
        else:
            from .exports import to_ome_zarr

            result = to_ome_zarr(
                rendering,
                output,
                version=zarr_version,
                shard=shard,
                chunk=chunk,
                client=client,
                progress=progress,
                overwrite=overwrite,
                resume=resume,
                storage_options=output_storage_options,
                compute_kwargs=options,
            )
    if result.chunks_skipped:
        logger.info("Resumed: skipped %d chunks already written", result.chunks_skipped)
    return CropResult(
        result.path,
        result.shape,
        rendering.level,
        rendering.downsample,
        result.size_bytes,
        time.perf_counter() - started,
        result.levels,
        result.chunks_skipped,
        request=request,
    )


_IMAGE_SUFFIXES = (".tif", ".tiff", ".svs", ".qptiff", ".zarr", ".zarr/")
_USAGE = "crop(request, output, image=PATH_OR_URL_OR_SOURCE)"


def open_for_request(
    request: RenderRequest | None,
    *,
    image: str | os.PathLike[str] | Source | None = None,
    omero: str | None = None,
    minerva: str | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> Source:
    """The image a crop of ``request`` reads, opened by :func:`~minerva_dask.open_source`.

    With none of ``image``, ``omero`` and ``minerva``, the OMERO server of a full
    OMERO.figure URL; for OMERO the image id comes from the request's path, and its JPEG
    quality ``q`` unless ``options`` name one.
    """
    server = request.server if request is not None else None
    if image is None and omero is None and minerva is None and server:
        omero = server
    if image is None and omero is None and minerva is None:
        raise RequestError(
            f"no image given: {_USAGE}, e.g. crop(request, 'figure.png', "
            "image='slide.ome.tif'), or omero=SERVER, or minerva=UUID"
        )
    if omero is None:
        return open_source(image, minerva=minerva, storage_options=storage_options, **options)
    image_id = request.image_id if request is not None else None
    if image is None and minerva is None and (image_id is None or not image_id.isdigit()):
        raise RequestError(
            "reading from OMERO needs the image id: give a request /{image_id}/{z}/{t}/?c=..."
        )
    if request is not None and request.quality is not None:
        options.setdefault("quality", request.quality)  # an explicit quality wins
    return open_source(
        image,
        omero=omero,
        image_id=image_id,
        minerva=minerva,
        storage_options=storage_options,
        **options,
    )


def _check_arguments(request: Any, output: Any) -> None:
    """Name a call made the wrong way round before anything is opened or written."""
    if isinstance(request, Source):
        raise RequestError(
            f"the first argument is the request, not the image: {_USAGE} "
            "(request=None renders the image's own channel settings)"
        )
    if isinstance(request, os.PathLike) or (
        isinstance(request, str)
        and "?" not in request
        and (request.lower().endswith(_IMAGE_SUFFIXES) or os.path.exists(request))
    ):
        raise RequestError(
            f"{os.fspath(request)!r} looks like an image, not a request: give it as image=, "
            f"{_USAGE} (request=None renders the image's own channel settings)"
        )
    if not isinstance(output, str | os.PathLike):
        raise OutputError(
            f"output must be a file name or URL, got a {type(output).__name__}: {_USAGE}"
        )


def describe_plan(rendering: Any) -> str:
    """One line for a person: the scale, level, output size and channels of a render.

    A level reduced on the fly to keep max_size says so (``level 0 reduced 1/8``)."""
    fx, fy = rendering.downsample
    scale = f"1/{fx:g}" if fx == fy else f"1/{fx:g} x 1/{fy:g}"
    height, width = rendering.plan.grid.shape
    names = ", ".join(rendering.image.channels[c.index].name for c in rendering.plan.channels)
    level = f"level {rendering.level}" + (" raw" if hasattr(rendering, "provenance") else "")
    if rendering.plan.reduction > 1:
        level += f" reduced 1/{rendering.plan.reduction}"
    return f"Cropping {scale} scale: {level}, output {width} x {height} px, channels {names}"
