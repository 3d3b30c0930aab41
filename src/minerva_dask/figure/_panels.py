"""Each panel as a render request on its image, rendered together, then sized and turned.

A panel becomes one :class:`~minerva_dask.RenderRequest`: its channels (colour, window,
hidden, inverted), ``theZ``/``theT`` and the region of :mod:`._layout`, with the smallest
``max_size`` whose render is at least the panel's pixel size (so nothing is upsampled
unless the panel is zoomed past the image's own pixels). All panels are computed in one
dask computation. A render whose size is not exactly the panel's pixel size is resampled
to it with Pillow's bicubic filter (what OMERO.figure's TIFF export does); quarter turns
and flips are then exact (``numpy.rot90``, reversed axes); other angles are turned with
Pillow's bicubic rotation about the centre (:func:`._layout.rotated_frame`).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ..errors import MinervaDaskError, RequestError
from ..geometry import Rect
from ..graph import Rendering, render
from ..plan import PNG_MAX_PIXELS
from ..request import MAX_COORDINATE, ChannelSetting, RenderRequest
from ..sources import Source, open_source
from ..sources.base import capabilities
from ._file import Figure, FigurePanel
from ._layout import (
    crop_region,
    panel_pixels,
    render_max_size,
    rotated_frame,
    rotation_of,
    view_region,
)

__all__ = ["PanelJob", "compute_panels", "open_images", "plan_panels"]

logger = logging.getLogger(__name__)
DEFAULT_DPI = 300.0


@dataclass(frozen=True)
class PanelJob:
    """One panel planned: its request, the crop (image pixels), its final pixel size
    ``(width, height)``, dpi, quarter turns and the lazy rendering; for another angle,
    ``degrees``, the ``before`` size it is turned at and the ``margin`` cut after."""

    panel: FigurePanel
    request: RenderRequest
    crop: Rect
    size: tuple[int, int]
    dpi: float
    turns: int
    rendering: Rendering
    degrees: float = 0.0
    before: tuple[int, int] = (0, 0)
    margin: tuple[int, int] = (0, 0)


@contextlib.contextmanager
def naming(panel: FigurePanel) -> Iterator[None]:
    """Errors of ours raised inside name ``panel`` first (same type, one line)."""
    try:
        yield
    except MinervaDaskError as exc:
        if str(exc).startswith(panel.title):
            raise
        try:
            named = type(exc)(f"{panel.title}: {exc}")
        except TypeError:  # an error type with other arguments: keep it as it is
            raise exc from None
        raise named from None


def open_images(
    figure: Figure,
    images: Mapping[str, str | Source] | None,
    omero: str | None,
    *,
    storage_options: dict[str, Any] | None = None,
    omero_options: dict[str, Any] | None = None,
) -> dict[str, Source]:
    """Open every image the figure names once: ``images[id]`` (a path, URL or open
    source) first, else image ``id`` on the ``omero`` server. On an error, what was
    opened here is closed again."""
    images = {str(k): v for k, v in (images or {}).items()}
    unused = sorted(set(images) - {p.image_id for p in figure.panels})
    if unused:
        raise RequestError(
            f"image id {', '.join(unused)} given but no panel shows it (the figure's image "
            f"ids: {', '.join(sorted({p.image_id for p in figure.panels}))})"
        )
    opened: dict[str, Source] = {}
    for panel in figure.panels:
        image_id = panel.image_id
        if image_id in opened:
            continue
        with _closing_on_error(opened, images), naming(panel):
            given = images.get(image_id)
            if given is not None and hasattr(given, "info"):
                opened[image_id] = given  # type: ignore[assignment]
            elif given is not None:
                opened[image_id] = open_source(given, storage_options=storage_options)  # type: ignore[arg-type]
            elif omero is not None:
                if not image_id.isdigit():
                    raise RequestError(f"image id {image_id!r} is not an OMERO image id")
                opened[image_id] = open_source(
                    omero=omero, image_id=image_id, **(omero_options or {})
                )
            else:
                raise RequestError(
                    f"no image given for image id {image_id}: map it with --image "
                    f"{image_id}=PATH_OR_URL (images={{'{image_id}': ...}}), or read it from "
                    "OMERO with --omero SERVER (omero=...)"
                )
    return opened


@contextlib.contextmanager
def _closing_on_error(opened: dict[str, Source], given: Mapping[str, Any]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        close_opened(opened, given)
        raise


def close_opened(sources: Mapping[str, Source], given: Mapping[str, Any]) -> None:
    """Close the sources opened here (not those the caller gave open)."""
    for image_id, source in sources.items():
        if not hasattr(given.get(image_id), "info"):
            with contextlib.suppress(Exception):
                source.close()


def panel_request(panel: FigurePanel, region: Rect, max_size: int) -> RenderRequest:
    """The render request of ``panel`` over ``region`` (before turning)."""
    channels = []
    for index, channel in enumerate(panel.channels):
        lut = channel.color if channel.color.lower().endswith(".lut") else None
        channels.append(
            ChannelSetting(
                index=index,
                window=(channel.start, channel.end),
                color=None if lut else channel.color,
                lut=lut,
                active=channel.active,
                inverted=channel.inverted,
            )
        )
    return RenderRequest(
        channels=tuple(channels),
        region=region,
        max_size=max_size,
        z=panel.the_z,
        t=panel.the_t,
        image_id=panel.image_id,
    )


def plan_panels(
    figure: Figure,
    sources: Mapping[str, Source],
    *,
    dpi: float | None = None,
    preset: str = "linear",
    background: str = "black",
    max_pixels: int = PNG_MAX_PIXELS,
) -> list[PanelJob]:
    """Every panel's request and lazy rendering, checked against its image (nothing read).

    A panel of more than ``max_pixels`` pixels, or whose render before resampling would
    be, is refused: panels are held in memory whole."""
    jobs = []
    for panel in figure.panels:
        with naming(panel):
            if panel.z_projection:
                raise RequestError(
                    "a Z projection (z_projection) is not rendered; turn it off in the figure "
                    "to render theZ"
                )
            panel_dpi = dpi or panel.min_export_dpi or DEFAULT_DPI
            size = panel_pixels(panel.width, panel.height, panel_dpi)
            turns, degrees = rotation_of(panel)
            crop = crop_region(panel)
            region = view_region(crop, turns)
            before, margin = (size if turns % 2 == 0 else (size[1], size[0])), (0, 0)
            if degrees:
                region, before, margin = rotated_frame(crop, size, degrees)
            source = sources[panel.image_id]
            info = source.info
            if (info.width, info.height) != (panel.orig_width, panel.orig_height):
                raise RequestError(
                    f"the figure says the image is {panel.orig_width:g} x "
                    f"{panel.orig_height:g} px, the image given is {info.width} x "
                    f"{info.height} px: not the figure's image (or not at full resolution)"
                )
            _check_pixels(size, max_pixels)
            if max(abs(region.x), abs(region.y), region.width, region.height) > MAX_COORDINATE:
                raise RequestError(  # before any arithmetic on it (a zoom of 1e-300 hung)
                    f"zoom {panel.zoom:g}, dx {panel.dx:g}, dy {panel.dy:g} put the panel's "
                    f"region beyond {MAX_COORDINATE:g} pixels"
                )
            max_size = render_max_size(info, region, *before)
            request = panel_request(panel, region, max_size)
            rendering = render(
                source, request, preset=preset, background=background, max_pixels=max_pixels
            )
            jobs.append(
                PanelJob(
                    panel, request, crop, size, panel_dpi, turns, rendering, degrees, before, margin
                )
            )
    return jobs


def _check_pixels(size: tuple[int, int], budget: int) -> None:
    if size[0] * size[1] > budget:
        raise RequestError(
            f"the panel is {size[0]:,} x {size[1]:,} px at this dpi, over the budget of "
            f"{budget:,} pixels; ask a lower dpi, or raise max_pixels= (CLI: --max-pixels)"
        )


def compute_panels(jobs: list[PanelJob], client: Any = None) -> list[np.ndarray]:
    """All panels computed in one dask computation, then sized, turned and flipped:
    ``(height, width, 3)`` uint8 arrays of exactly each job's ``size``."""
    from ..compute import compute_all, compute_options

    options: dict[str, Any] = {}
    for job in jobs:  # enough threads for the most latency-bound source
        wanted = compute_options(job.rendering.source, {})
        if wanted.get("num_workers", 0) > options.get("num_workers", 0):
            options = wanted
    arrays = compute_all([job.rendering.data for job in jobs], client, **options)
    return [finish(job, np.asarray(array)) for job, array in zip(jobs, arrays, strict=True)]


def finish(job: PanelJob, rgb: np.ndarray) -> np.ndarray:
    """``rgb`` (the rendering) resampled to the panel's size if need be, turned, flipped."""
    width, height = job.before
    if rgb.shape[:2] != (height, width):
        rgb = resample(rgb, width, height)
    rgb = np.rot90(rgb, k=-job.turns)  # clockwise, as OMERO.figure turns panels
    if job.degrees:
        rgb = turn(rgb, job.degrees)
        (mx, my), (w, h) = job.margin, job.size
        rgb = rgb[my : my + h, mx : mx + w]
    if job.panel.horizontal_flip:
        rgb = rgb[:, ::-1]
    if job.panel.vertical_flip:
        rgb = rgb[::-1]
    return np.ascontiguousarray(rgb)


def resample(rgb: np.ndarray, width: int, height: int) -> np.ndarray:
    """``rgb`` resized to ``width x height`` with Pillow's bicubic filter."""
    from ._page import pillow

    image = pillow().Image.fromarray(rgb)
    return np.asarray(image.resize((width, height), pillow().Image.Resampling.BICUBIC))


def turn(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """``rgb`` turned ``degrees`` clockwise about its centre, bicubic (Pillow), same size."""
    from ._page import pillow

    image = pillow().Image.fromarray(rgb)
    return np.asarray(image.rotate(-degrees, resample=pillow().Image.Resampling.BICUBIC))


def job_record(job: PanelJob) -> dict[str, Any]:
    """What the manifest says of one panel's render (no credentials: sources redact)."""
    rendering = job.rendering
    height, width = rendering.shape[:2]
    return {
        "number": job.panel.number,
        "image_id": job.panel.image_id,
        "name": job.panel.name,
        "source": _source_text(rendering.source),
        "request": replace(job.request, server=None).to_url(),
        "crop": [job.crop.x, job.crop.y, job.crop.width, job.crop.height],
        "z": job.panel.the_z,
        "t": job.panel.the_t,
        "rotation": job.degrees or job.turns * 90,
        "horizontal_flip": job.panel.horizontal_flip,
        "vertical_flip": job.panel.vertical_flip,
        "dpi": job.dpi,
        "size": list(job.size),
        "level": rendering.level,
        "downsample": list(rendering.downsample),
        "rendered_size": [width, height],
        "resampled": None if (width, height) == job.before else "bicubic",
        "turned": "bicubic" if job.degrees else None,
    }


def _source_text(source: Any) -> str:
    from .._redact import redact, redact_url

    server = getattr(source, "server", None)
    if isinstance(server, str):
        return f"omero {redact_url(server)} image {getattr(source, 'image_id', '?')}"
    ref = capabilities(source).ref
    return redact_url(ref) if isinstance(ref, str) and "://" in ref else redact(ref or source)
