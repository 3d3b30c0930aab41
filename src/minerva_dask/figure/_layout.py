"""Where each panel's pixels come from and how many there are: pure arithmetic.

Units: page points (1/72 inch) for a panel's place and size on the page; full-resolution
image pixels for regions; output pixels for sizes at the export's dpi.

The crop is the one OMERO.figure's export computes (``Figure_To_Pdf.py``,
``get_crop_region``): the viewport is ``orig_width / (zoom / 100)`` by ``orig_height /
(zoom / 100)`` image pixels, narrowed to the panel's aspect ratio where the two differ
by more than 0.01, centred on the image's centre moved by ``-dx, -dy``. A panel's pixel
size is its printed size times ``dpi / 72``, rounded. A panel rotated by a quarter turn
shows the region of the swapped size about the same centre, turned clockwise; by another
angle, the bounding box of the turned crop, turned with bicubic resampling and cut to
size (OMERO.figure's export does the same with a region 1.5 times the crop's side).
"""

from __future__ import annotations

import math

from ..geometry import Rect, choose_level, choose_reduction, region_at_level
from ..request import MAX_SIDE
from ..sources.base import ImageInfo
from ._file import FigurePanel

__all__ = [
    "crop_region",
    "panel_pixels",
    "render_max_size",
    "rotated_frame",
    "rotation_of",
    "view_region",
]


def crop_region(panel: FigurePanel) -> Rect:
    """The viewport of ``panel`` in full-resolution image pixels (``get_crop_region``).

    >>> from minerva_dask.figure._file import FigurePanel
    >>> p = FigurePanel(1, "1", "a", 0, 0, width=100, height=50, orig_width=400,
    ...                 orig_height=200, channels=(), zoom=200, dx=10, dy=-20)
    >>> crop_region(p)
    Rect(x=90.0, y=70.0, width=200.0, height=100.0)
    """
    scale = panel.zoom / 100
    tile_w, tile_h = panel.orig_width / scale, panel.orig_height / scale
    frame = panel.width / panel.height
    if abs(panel.orig_width / panel.orig_height - frame) > 0.01:
        if panel.orig_width / panel.orig_height < frame:  # the viewport is wider
            tile_h = tile_w / frame
        else:
            tile_w = tile_h * frame
    x = (panel.orig_width - tile_w) / 2 - panel.dx
    y = (panel.orig_height - tile_h) / 2 - panel.dy
    return Rect(x, y, tile_w, tile_h)


def panel_pixels(width_pt: float, height_pt: float, dpi: float) -> tuple[int, int]:
    """``(width, height)`` in pixels of ``width_pt x height_pt`` points printed at ``dpi``.

    >>> panel_pixels(72, 36, 300)
    (300, 150)
    """
    return max(1, round(width_pt * dpi / 72)), max(1, round(height_pt * dpi / 72))


def rotation_of(panel: FigurePanel) -> tuple[int, float]:
    """``(quarter turns 0-3, 0.0)`` for a multiple of 90 degrees (turned exactly), else
    ``(0, degrees)`` within (0, 360) clockwise (resampled, :func:`rotated_frame`).

    >>> from minerva_dask.figure._file import FigurePanel
    >>> [rotation_of(FigurePanel(1, "1", "a", 0, 0, 1, 1, 1, 1, (), rotation=r))
    ...  for r in (-90, 450, 30)]
    [(3, 0.0), (1, 0.0), (0, 30.0)]
    """
    turns = panel.rotation / 90
    if turns == int(turns):
        return int(turns) % 4, 0.0
    return 0, float(panel.rotation) % 360


def rotated_frame(
    crop: Rect, size: tuple[int, int], degrees: float
) -> tuple[Rect, tuple[int, int], tuple[int, int]]:
    """For a panel turned ``degrees`` (not a quarter turn) about its crop's centre:
    the region to render, its pixel size before turning, and the margin ``(mx, my)`` cut
    from each side after turning to leave ``size``.

    The region is the bounding box of the turned crop, at least the panel's size, plus 2
    output pixels a side (so that the bicubic turn has neighbours at the edges), at the
    panel's scale
    ``size[0] / crop.width`` output pixels per image pixel, centred on the crop.

    >>> rotated_frame(Rect(275, 175, 550, 350), (275, 175), 30)
    (Rect(x=219.0, y=55.0, width=662.0, height=590.0), (331, 295), (28, 60))
    >>> rotated_frame(Rect(0, 0, 1100, 700), (275, 175), 89)[1:]
    ((279, 283), (2, 54))
    """
    width, height = size
    scale = width / crop.width
    cos, sin = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    box_w = (crop.width * cos + crop.height * sin) * scale
    box_h = (crop.width * sin + crop.height * cos) * scale
    mx = max(0, math.ceil((box_w - width) / 2 - 1e-9)) + 2  # the canvas holds the panel
    my = max(0, math.ceil((box_h - height) / 2 - 1e-9)) + 2  # and the turned crop's box
    before = (width + 2 * mx, height + 2 * my)
    cx, cy = crop.x + crop.width / 2, crop.y + crop.height / 2
    region_w, region_h = before[0] / scale, before[1] / scale
    return Rect(cx - region_w / 2, cy - region_h / 2, region_w, region_h), before, (mx, my)


def view_region(crop: Rect, turns: int) -> Rect:
    """The region to render before turning: ``crop`` itself, or for an odd number of
    quarter turns the region of swapped width and height about the same centre.

    >>> view_region(Rect(0, 0, 200, 100), 1)
    Rect(x=50.0, y=-50.0, width=100, height=200)
    """
    if turns % 2 == 0:
        return crop
    cx, cy = crop.x + crop.width / 2, crop.y + crop.height / 2
    return Rect(cx - crop.height / 2, cy - crop.width / 2, crop.height, crop.width)


def _output_size(info: ImageInfo, region: Rect, max_size: int) -> tuple[int, int]:
    """The size the general level rule renders ``region`` at for ``max_size`` (as
    :func:`minerva_dask.plan.plan_render` computes it)."""
    level = choose_level(info.downsamples, region.width, region.height, max_size)
    fx, fy = info.levels[level].downsample
    k = choose_reduction((fx, fy), region.width, region.height, max_size)
    at = region_at_level(region, (fx * k, fy * k))
    return int(at.width), int(at.height)


def render_max_size(info: ImageInfo, region: Rect, width: int, height: int) -> int:
    """The smallest ``max_size`` whose render of ``region`` is at least ``width x height``
    pixels: the coarsest level (or level reduced on the fly) that needs no upsampling.

    Where even full resolution is smaller (a panel zoomed past the image's pixels), the
    ``max_size`` of full resolution. The render's size only grows with ``max_size``, so
    this is a bisection over pure arithmetic.
    """
    high = min(MAX_SIDE, max(1, math.ceil(max(region.width, region.height))))
    got = _output_size(info, region, high)
    if got[0] < width or got[1] < height:
        return high
    low = 1
    while low < high:
        middle = (low + high) // 2
        w, h = _output_size(info, region, middle)
        if w >= width and h >= height:
            high = middle
        else:
            low = middle + 1
    return high
