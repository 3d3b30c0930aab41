"""Automatic contrast windows for a request, from any source (``--auto-windows``).

Each shown channel's window becomes the ``(low, high)`` percentiles of its pixels in a
coarse overview of the whole image: the request re-planned over the whole image at
:data:`OVERVIEW_SIDE` pixels at most a side (a coarse pyramid level, reduced on the fly
where none is small enough), read through the same lazy chunks a render uses, so ``z``,
``t`` and a z projection (``p=``) are honoured and level 0 is never read.

Integer images get integer windows (low rounded down, high up), so the request URL stays
short and pastes back to the same render. Where the server only sends windowed 8-bit
tiles (OMERO), the percentiles are found in two passes: over the channel's whole pixel
range, then over the range the first pass found, so the window is good to
1/65025 of that range. Minerva's rendered tiles carry no values to measure; they are
refused.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any

import numpy as np

from .errors import RequestError
from .plan import plan_render
from .request import RenderRequest, ResolvedChannel
from .sources.base import capabilities, default_window, tile_mode

__all__ = ["DEFAULT_PERCENTILES", "OVERVIEW_SIDE", "parse_percentiles", "with_auto_windows"]

logger = logging.getLogger(__name__)
DEFAULT_PERCENTILES = (0.1, 99.9)
OVERVIEW_SIDE = 2048


def parse_percentiles(text: str) -> tuple[float, float]:
    """``"LOW,HIGH"`` percentiles, ``0 <= LOW < HIGH <= 100``.

    >>> parse_percentiles("1,99.5")
    (1.0, 99.5)
    """
    parts = text.split(",")
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise RequestError(
            f"auto windows {text!r}: expected LOW,HIGH percentiles, e.g. 0.1,99.9"
        ) from None
    if not (0 <= low < high <= 100):
        raise RequestError(f"auto windows {text!r}: need 0 <= LOW < HIGH <= 100")
    return low, high


def _overview(source: Any, request: RenderRequest, mode: str, styles: Any = None) -> np.ndarray:
    """The shown channels over the whole image, small: ``(c, y, x)``."""
    from .chunks import level_array

    info = source.info
    whole = replace(request, region=None, tile=None, max_size=OVERVIEW_SIDE)
    plan = plan_render(info, whole)
    if styles is not None:
        plan = replace(plan, channels=styles)
    return np.asarray(level_array(source, plan, mode).compute())


def _window(
    values: np.ndarray, percentiles: tuple[float, float], dtype: np.dtype
) -> tuple[float, float] | None:
    """The window from ``values``' percentiles; None where none is finite (NaN, inf)."""
    values = np.asarray(values)
    if values.dtype.kind == "f":
        values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    low, high = (float(v) for v in np.percentile(values, percentiles))
    if dtype.kind in "ui":
        low, high = float(math.floor(low)), float(math.ceil(high))
        if high > low:
            return (low, high)
        top = float(np.iinfo(dtype).max)
        return (low, low + 1) if low < top else (low - 1, low)  # a constant at the top: white
    return (low, high if high > low else low + max(abs(low) * 1e-6, 1e-12))


def _windowed_percentiles(
    source: Any, request: RenderRequest, shown: tuple[ResolvedChannel, ...], percentiles: Any
) -> dict[int, tuple[float, float] | None]:
    """Percentiles of raw values from 8-bit windowed tiles, in two passes (see above)."""
    dtype = np.dtype(source.info.dtype)
    ranges = {c.index: default_window(dtype) for c in shown}
    for _ in range(2):
        styles = tuple(
            replace(
                c,
                start=ranges[c.index][0],
                end=ranges[c.index][1],
                family="linear",
                coefficient=1.0,
                inverted=False,
            )
            for c in shown
        )
        quanta = _overview(source, request, "windowed", styles)
        found = {}
        for style, plane in zip(styles, quanta, strict=True):
            step = (style.end - style.start) / 255
            q_low, q_high = np.percentile(plane, percentiles)
            low = style.start + max(math.floor(q_low) - 1, 0) * step
            high = style.start + min(math.ceil(q_high) + 1, 255) * step
            found[style.index] = (low, high)
        ranges = found
    return {i: _window(np.asarray(r), (0, 100), dtype) for i, r in ranges.items()}


def with_auto_windows(
    source: Any,
    request: RenderRequest,
    percentiles: tuple[float, float] = DEFAULT_PERCENTILES,
) -> RenderRequest:
    """``request`` with every shown channel's window set from percentiles of a coarse
    overview (see the module docstring); hidden channels keep theirs.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = with_auto_windows(src, md.default_request(src.info, channels=[0]))
    >>> low, high = req.channels[0].window
    >>> 0 < low < high < 65535 and low.is_integer()
    True
    """
    mode = tile_mode(source)
    shown = request.resolve(source.info)
    if request.projection is not None and mode != "raw" and not capabilities(source).projects:
        raise RequestError(f"p={request.projection.to_param()}: {source!r} cannot project z planes")
    dtype = np.dtype(source.info.dtype)
    if mode == "raw":
        planes = _overview(source, request, "raw")
        windows = {
            c.index: _window(p, percentiles, dtype) for c, p in zip(shown, planes, strict=True)
        }
    elif capabilities(source).reads_windowed:
        windows = _windowed_percentiles(source, request, shown, percentiles)
    else:
        raise RequestError(
            f"{source!r} sends rendered tiles only: their pixel values are not the image's, "
            "so windows cannot be measured from them (use raw tiles, e.g. Minerva mode raw)"
        )
    for index in [i for i, window in windows.items() if window is None]:
        logger.warning(
            "auto windows: channel %d holds no finite value in the overview; its window is kept",
            index + 1,
        )
        del windows[index]
    channels = tuple(
        replace(c, window=windows[c.index]) if c.index in windows else c for c in request.channels
    )
    return replace(request, channels=channels)
