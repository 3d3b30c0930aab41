"""For exploring in notebooks: previews, channel tables, automatic windows.

``preview(rendering)`` re-renders a request at a small size from a coarse level (never the
full-resolution array); ``auto_windows`` computes contrast windows from percentiles of a
low-resolution level, as OMERO's and napari's auto-contrast do, without reading level 0.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from ._html import channel_table_html, swatch
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


def preview(rendering: Any, max_size: int = PREVIEW_SIZE) -> np.ndarray:
    """A small ``(y, x, 3)`` uint8 picture of a rendering, at most ``max_size`` a side.

    The request is rendered again with ``max_size`` from the coarsest suitable level (a
    level reduced on the fly when none is small enough), so a whole-slide rendering
    previews in a moment.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> rgb = md.render(src, md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,4096,3072"))
    >>> preview(rgb, 256).shape
    (192, 256, 3)
    """
    from .graph import render

    small = render(
        rendering.source,
        replace(rendering.request, max_size=max_size),
        preset=rendering.preset
        if rendering.preset in ("linear", "omero", "minerva-2018")
        else "linear",
        gamma=rendering.gamma,
        background=rendering.background,
    )
    return small.compute()  # the general level rule keeps max_size (reducing if need be)


def _png_data_uri(rgb: np.ndarray) -> str:
    from .writers.png import encode_png

    return "data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode()


def rendering_html(rendering: Any, max_size: int = PREVIEW_SIZE) -> str:
    """Summary of a rendering (image, level, size, channels) and a small preview image."""
    height, width = rendering.shape[:2]
    fx, _ = rendering.downsample
    channels = "".join(
        f"<li>{c.index + 1} {html.escape(rendering.image.channels[c.index].name)}: "
        f"{swatch(c.color)} window {c.start:g} : {c.end:g}"
        f"{' (inverted)' if c.inverted else ''}</li>"
        for c in rendering.plan.channels
    )
    image = preview(rendering, max_size)
    level = f"level {rendering.level}"
    if rendering.plan.reduction > 1:
        level += f" reduced 1/{rendering.plan.reduction}"
    return (
        f"<div><b>{html.escape(rendering.image.name)}</b>: {level} "
        f"(1/{fx:g} scale), output {width} x {height} px, preset {rendering.preset}"
        f'<ul>{channels}</ul><img src="{_png_data_uri(image)}" '
        f'title="preview, {image.shape[1]} x {image.shape[0]} px"/></div>'
    )


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
