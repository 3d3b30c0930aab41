"""Pyramids written as one TIFF series per level.

Some writers (Bio-Formats with flattened resolutions, scripts that call tifffile's
``TiffWriter.write`` once per level) store a pyramid as consecutive series of decreasing
size rather than as SubIFDs or pages: series ``n`` is full resolution, ``n + 1`` about half
of it, and so on. tifffile reports each as its own single-level series.

:func:`series_levels` finds such a run. A following series is a level when it has the same
axes, dtype and non-spatial shape (channels, Z, T) as the one above and is smaller by one
factor in both X and Y (the aspect kept to within a pixel of rounding), the factor between
1.5 and 4.5. Only series of tifffile's generic kinds (OME, shaped, generic, uniform) are
grouped: in the formats it knows (SVS, NDPI, QPTIFF...) smaller series are thumbnails,
labels and macros. The run stops at the first series that is not smaller or holds other
channels, dtype or axes (the next image of a multi-image file, a label, a macro). A series
that is smaller with the same channels yet does not fit the rule (another aspect, a factor
out of range) is ambiguous and refused.
"""

from __future__ import annotations

from typing import Any

from ..errors import SourceError
from ._fs import redact_url

__all__ = ["MAX_FACTOR", "MIN_FACTOR", "series_levels"]

MIN_FACTOR = 1.5
MAX_FACTOR = 4.5
# tifffile's series kinds with no pyramid of their own; the others (svs, ndpi, qpi, scn...)
# are formats tifffile already knows, where smaller series are thumbnails, labels, macros
_GENERIC_KINDS = frozenset({"generic", "ome", "shaped", "uniform"})


def _spatial(series: Any) -> tuple[int, int, tuple[int, ...]]:
    """``(width, height, other sizes)`` of a series with Y and X as its last two axes."""
    shape = tuple(series.shape)
    axes = series.axes.upper()
    if axes.endswith("YXS"):
        return shape[-2], shape[-3], shape[:-3] + shape[-1:]
    return shape[-1], shape[-2], shape[:-2]


def series_levels(tif: Any, index: int, ref: str) -> list[Any]:
    """The levels of series ``index``: its own (SubIFDs, pages), else the following series
    that make a series-per-level pyramid with it (see the module docstring)."""
    first = tif.series[index]
    if len(first.levels) > 1:
        return list(first.levels)
    if first.kind not in _GENERIC_KINDS or not first.axes.upper().endswith(("YX", "YXS")):
        return [first]
    levels = [first]
    for number in range(index + 1, len(tif.series)):
        above, below = levels[-1], tif.series[number]
        if (
            below.kind != first.kind
            or len(below.levels) > 1
            or below.axes != above.axes
            or below.dtype != above.dtype
        ):
            break
        width, height, others = _spatial(above)
        next_width, next_height, next_others = _spatial(below)
        if next_others != others or next_width >= width or next_height >= height:
            break  # another image, or not smaller: not a level of this one
        factor = width / next_width
        fits = MIN_FACTOR <= factor <= MAX_FACTOR and abs(height / factor - next_height) <= 1
        if not fits:
            raise SourceError(
                f"{redact_url(ref)}: series {number} ({next_width} x {next_height}) has the "
                f"channels and dtype of series {number - 1} ({width} x {height}) but is not "
                f"one level below it (a factor of {MIN_FACTOR:g} to {MAX_FACTOR:g} in both X "
                "and Y): cannot tell whether the series make one pyramid; read a series "
                "alone with open_image(..., series_levels=False)"
            )
        levels.append(below)
    return levels
