"""For exploring in notebooks: previews, channel tables, automatic windows.

``preview(rendering)`` re-renders a request at a small size from a coarse level (never the
full-resolution array); ``auto_windows`` computes contrast windows from percentiles of a
low-resolution level, as OMERO's and napari's auto-contrast do, without reading level 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._html import channel_table_html, rendering_html
from .graph import preview
from .request import RenderRequest
from .sources.base import Source, read_level

__all__ = [
    "auto_windows",
    "channel_table_html",
    "preview",
    "rendering_html",
    "request_with_auto_windows",
]

PREVIEW_SIZE = 512
AUTO_LEVEL_PIXELS = 1 << 22  # the finest level with at most this many pixels is sampled


def auto_windows(
    source: Source,
    channels: Sequence[int] | None = None,
    *,
    percentiles: tuple[float, float] = (0.1, 99.9),
    z: int = 0,
    t: int = 0,
) -> dict[int, tuple[float, float]]:
    """Contrast windows ``{channel: (start, end)}`` from percentiles of a low level.

    The finest level with at most 4 Mpx is read whole (a coarse overview, not level 0).
    Windows are in raw pixel values; ``start == end`` is widened by one unit.

    >>> import minerva_dask as md
    >>> windows = md.auto_windows(md.open_image(md.demo_image_path()), [0])
    >>> low, high = windows[0]
    >>> 0 < low < high < 65535
    True
    """
    info = source.info
    channels = list(range(info.size_c)) if channels is None else list(channels)
    level = next(
        (i for i, lv in enumerate(info.levels) if lv.width * lv.height <= AUTO_LEVEL_PIXELS),
        len(info.levels) - 1,
    )
    planes = read_level(source, level, channels, z=z, t=t)
    out = {}
    for channel, plane in zip(channels, planes, strict=True):
        low, high = (float(v) for v in np.percentile(plane, percentiles))
        out[channel] = (low, high if high > low else low + 1)
    return out


def request_with_auto_windows(
    source: Source, request: RenderRequest, **options: Any
) -> RenderRequest:
    """``request`` with every listed channel's window replaced by :func:`auto_windows`.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.request_with_auto_windows(src, md.default_request(src.info, channels=[0]))
    >>> req.channels[0].window == md.auto_windows(src, [0])[0]
    True
    """
    windows = auto_windows(source, [c.index for c in request.channels], **options)
    channels = tuple(replace(c, window=windows[c.index]) for c in request.channels)
    return replace(request, channels=channels)
