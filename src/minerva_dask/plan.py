"""Everything decided before any pixel: level, reduction, region at level, chunk grid,
output size, and the budgets they must keep.

Pure: no dask, no I/O. The output's size is computed first, with arithmetic, and checked
against its budget before any grid is built; grids cover only the output, so the
planner's time and memory follow the output's size, never the region's or the image's
nominal size (a ``10^12`` px region or a zarr that claims ``10^12`` px sides plans in
microseconds).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

from .errors import RequestError
from .geometry import (
    Rect,
    TileGrid,
    choose_level,
    choose_level_omero_figure,
    choose_reduction,
    plan_tile_grid,
    region_at_level,
)
from .projection import Projection
from .request import RenderRequest, ResolvedChannel
from .sources.base import ImageInfo
from .writers._meta import chunk_side_problem

__all__ = [
    "LEVEL_RULES",
    "MAX_CHUNKS",
    "MAX_PIXELS",
    "MAX_READ_PIXELS",
    "MIN_CHUNK_SIDE",
    "PNG_MAX_PIXELS",
    "RenderPlan",
    "plan_render",
]

logger = logging.getLogger(__name__)

# Source tiles smaller than this are grouped so that a chunk is at least this many pixels
# a side: a 100k x 100k slide in 256-pixel OMERO tiles would otherwise make 150k tasks.
MIN_CHUNK_SIDE = 512
# Smallest default chunk side of a level reduced on the fly (see _chunk_side).
MIN_REDUCED_CHUNK_SIDE = 64
LEVEL_RULES = ("general", "omero-figure")
# Output pixels a render may have unless the caller raises it (``max_pixels``): PNG
# decoders (libpng, Pillow) fail beyond 2^31 - 1 pixels; chunked exports may be larger.
PNG_MAX_PIXELS = 2**31 - 1
MAX_PIXELS = 2**40
# Level pixels (per plane) that an on-the-fly reduction may read (``max_read_pixels``):
# reducing a flat 10^12 px image really means reading all of it.
MAX_READ_PIXELS = 2**34
# Output chunks (tasks) a plan may have: beyond this the graph alone would not fit.
MAX_CHUNKS = 2**24


@dataclass(frozen=True, slots=True)
class RenderPlan:
    """Everything decided before any pixel is read.

    ``grid`` holds the level, the region in pixels of the level read (reduced by
    ``reduction``, see :func:`minerva_dask.geometry.choose_reduction`) and the chunk edges;
    ``channels`` the shown channels with their windows and colours resolved.
    ``level_downsample`` is the ``(fx, fy)`` of the pyramid level read; ``projection``
    the z projection of the request, if any (then ``z`` is not read).
    """

    grid: TileGrid
    channels: tuple[ResolvedChannel, ...]
    z: int
    t: int
    reduction: int = 1
    level_downsample: tuple[float, float] = (1.0, 1.0)
    projection: Projection | None = None

    @property
    def level(self) -> int:
        """Pyramid level read (0 = full resolution)."""
        return self.grid.level

    @property
    def downsample(self) -> tuple[float, float]:
        """``(fx, fy)``: level-0 pixels per output pixel (the level's, times the reduction)."""
        fx, fy = self.level_downsample
        return (fx * self.reduction, fy * self.reduction)


def _chunk_side(tile: int, requested: int | None, reduction: int = 1) -> int:
    """Output chunk side: the one asked for, else the level's tile grouped up to
    ``MIN_CHUNK_SIDE``. A reduced level's chunk is that divided by the reduction, so that
    it reads about one or two tile groups of the level, but at least
    ``MIN_REDUCED_CHUNK_SIDE``: a reduced chunk reads the level one tile at a time into its
    block sums (memory: the chunk and one tile, whatever it reads), and one-pixel chunks
    would make a task per output pixel."""
    if requested is not None:
        problem = chunk_side_problem(requested)
        if problem:
            raise RequestError(f"chunk size {problem}")
        return requested
    side = tile * max(1, math.ceil(MIN_CHUNK_SIDE / tile))
    if reduction == 1:
        return side
    return max(side // reduction, min(side, MIN_REDUCED_CHUNK_SIDE))


def _check_budget(value: int, budget: int, what: str, how: str, unit: str = "pixels") -> None:
    if value > budget:
        raise RequestError(f"{what} is {value:,} {unit}, over the budget of {budget:,}; {how}")


def plan_render(
    info: ImageInfo,
    request: RenderRequest,
    *,
    level: int | None = None,
    level_rule: str = "general",
    chunk_size: int | tuple[int, int] | None = None,
    align: str = "tiles",
    max_pixels: int = MAX_PIXELS,
    max_read_pixels: int = MAX_READ_PIXELS,
) -> RenderPlan:
    """Check ``request`` against ``info``, choose the level and cut the output into chunks.

    Parameters
    ----------
    level
        Force this pyramid level instead of choosing one from ``max_size`` (no reduction).
    level_rule
        ``"general"``: the finest level whose scaled longest side is <= max_size
        (rendering.md section 2); when even the coarsest level is too big, it is reduced
        further on the fly by the smallest integer factor ``k`` that keeps max_size (block
        means of ``k x k`` level pixels, :func:`minerva_dask.geometry.choose_reduction`),
        so the output never exceeds max_size. ``"omero-figure"``: OMERO.figure's own rule,
        the native level size, which may exceed max_size; never reduced.
    chunk_size
        Output chunk side in output pixels, or ``(width, height)``; default the source's
        tile size (grouped up to at least 512 pixels, divided by the reduction).
    align
        ``"tiles"``: chunk edges on the source's tile grid (each chunk one read);
        ``"output"``: a regular grid from the output's origin (for chunked file output).
    max_pixels
        Refuse (:class:`RequestError`, before any read) an output of more pixels.
    max_read_pixels
        Refuse a reduction that would read more level pixels (per plane) than this.

    A region that does not overlap the image renders background, with a warning on the
    ``minerva_dask`` logger.

    >>> import numpy as np
    >>> from minerva_dask.request_url import default_request
    >>> from minerva_dask.sources.base import ChannelInfo, LevelInfo
    >>> flat = ImageInfo(name="flat", dtype=np.dtype("uint16"), size_c=1, size_z=1, size_t=1,
    ...                  levels=(LevelInfo(4096, 4096, 512, 512),),
    ...                  channels=(ChannelInfo(0, "DNA", (1, 1, 1), (0, 65535)),))
    >>> plan = plan_render(flat, default_request(flat, max_size=512))
    >>> plan.level, plan.reduction, plan.grid.shape, plan.downsample
    (0, 8, (512, 512), (8.0, 8.0))
    """
    request = request.for_image(info)  # a tile= becomes the region it covers
    channels = request.resolve(info)
    region = request.region or Rect(0, 0, info.width, info.height)
    reduction = 1
    if level is None:
        if level_rule not in LEVEL_RULES:
            raise RequestError(f"level_rule must be one of {LEVEL_RULES}, got {level_rule!r}")
        chooser = choose_level if level_rule == "general" else choose_level_omero_figure
        level = chooser(info.downsamples, region.width, region.height, request.max_size)
        if level_rule == "general":
            reduction = choose_reduction(
                info.levels[level].downsample, region.width, region.height, request.max_size
            )
    elif not 0 <= level < len(info.levels):
        raise RequestError(f"level {level} does not exist: the image has {len(info.levels)}")
    spec = info.levels[level]
    fx, fy = (float(f) for f in spec.downsample)
    k = reduction
    level_w, level_h = -(-spec.width // k), -(-spec.height // k)
    at_level = region_at_level(region, (fx * k, fy * k), toward_zero=level_rule == "omero-figure")
    out_w, out_h = int(at_level.width), int(at_level.height)
    _check_budget(
        out_w * out_h,
        max_pixels,
        f"the output, {out_w:,} x {out_h:,} px,",
        "ask a smaller max_size, or raise the budget with max_pixels=N (CLI: --max-pixels N)",
    )
    inside = at_level.intersection(Rect(0, 0, level_w, level_h))
    if inside is None:
        logger.warning(
            "region %s does not overlap the image (%d x %d px): the output is all background",
            ",".join(f"{v:g}" for v in (region.x, region.y, region.width, region.height)),
            info.width,
            info.height,
        )
    elif k > 1:
        x0, y0 = int(inside.x) * k, int(inside.y) * k
        x1, y1 = min(int(inside.right) * k, spec.width), min(int(inside.bottom) * k, spec.height)
        _check_budget(
            (x1 - x0) * (y1 - y0),
            max_read_pixels,
            f"reducing level {level} ({spec.width:,} x {spec.height:,} px) by 1/{k} on the fly "
            f"to keep max_size={request.max_size} reads {x1 - x0:,} x {y1 - y0:,} px; that",
            "use an image with a pyramid, a smaller region or a larger max_size, or raise the "
            "budget with max_read_pixels= (render, crop)",
        )
    if request.projection is not None and inside is not None:
        planes = len(request.projection.planes(info.size_z))
        _check_budget(  # every plane is read: 10^9 planes of a chunk each ran for hours
            out_w * out_h * k * k * planes,
            max_read_pixels,
            f"projecting {planes:,} z planes reads {out_w * k:,} x {out_h * k:,} level px "
            "from each; that",
            "project fewer planes (p=KIND|START:END), a smaller region or a smaller max_size, "
            "or raise the budget with max_read_pixels= (render, crop)",
        )
    if isinstance(chunk_size, tuple):
        chunk_w, chunk_h = chunk_size
    else:
        chunk_w = chunk_h = chunk_size  # type: ignore[assignment]
    side_w = _chunk_side(spec.tile_width, chunk_w, k)
    side_h = _chunk_side(spec.tile_height, chunk_h, k)
    # An upper bound of the chunk count, before any edge is made (tile cuts, plus the
    # two image edges each axis may add).
    chunks = (out_w // side_w + 3) * (out_h // side_h + 3)
    _check_budget(
        chunks,
        MAX_CHUNKS,
        f"cutting the {out_w:,} x {out_h:,} px output into {side_w} x {side_h} px chunks: that",
        "give a larger chunk size",
        "chunks",
    )
    grid = plan_tile_grid(at_level, level, (level_w, level_h), (side_w, side_h), align=align)
    return RenderPlan(
        grid=grid,
        channels=channels,
        z=request.z,
        t=request.t,
        reduction=k,
        level_downsample=(fx, fy),
        projection=request.projection,
    )


class Planned:
    """What an output planned by ``self.plan`` (a :class:`RenderPlan`) of ``self.image``
    (the image's info) says of itself: level read, scale and pixel size. A base of the
    lazy outputs (a rendering, a raw region), which hold those two attributes."""

    __slots__ = ()
    plan: RenderPlan
    image: Any

    @property
    def level(self) -> int:
        """The pyramid level read (0 = full resolution)."""
        return self.plan.level

    @property
    def reduction(self) -> int:
        """The integer factor by which the level was reduced on the fly (1: not reduced)."""
        return self.plan.reduction

    @property
    def downsample(self) -> tuple[float, float]:
        """``(fx, fy)``: level-0 pixels per output pixel."""
        return self.plan.downsample

    @property
    def pixel_size_um(self) -> tuple[float, float] | None:
        """Physical ``(x, y)`` size of one output pixel in µm, when the image knows it."""
        if self.image.pixel_size_um is None:
            return None
        (px, py), (fx, fy) = self.image.pixel_size_um, self.downsample
        return (px * fx, py * fy)
