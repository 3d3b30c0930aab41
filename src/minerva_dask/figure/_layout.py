"""Where each panel's pixels come from and how many there are: pure arithmetic.

Units: page points (1/72 inch) for a panel's place and size on the page; full-resolution
image pixels for regions; output pixels for sizes at the export's dpi.

The crop is the one OMERO.figure's export computes (``Figure_To_Pdf.py``,
``get_crop_region``): the viewport is ``orig_width / (zoom / 100)`` by ``orig_height /
(zoom / 100)`` image pixels, narrowed to the panel's aspect ratio where the two differ
by more than 0.01, centred on the image's centre moved by ``-dx, -dy``. A panel's pixel
size is its printed size times ``dpi / 72``, rounded. A panel rotated by a quarter turn
shows the region of the swapped size about the same centre, turned clockwise.
"""

from __future__ import annotations

import math

from ..errors import RequestError
from ..geometry import Rect, choose_level, choose_reduction, region_at_level
from ..request import MAX_SIDE
from ..sources.base import ImageInfo
from ._file import FigurePanel

__all__ = ["crop_region", "panel_pixels", "quarter_turns", "render_max_size", "view_region"]


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


def quarter_turns(panel: FigurePanel) -> int:
    """The panel's clockwise rotation in quarter turns (0-3); other angles are refused."""
    turns = panel.rotation / 90
    if turns != int(turns):
        raise RequestError(
            f"{panel.title}: rotation {panel.rotation:g} degrees is not a multiple of 90; "
            "only quarter turns are rendered (exactly, with no resampling)"
        )
    return int(turns) % 4


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
