"""HTML for notebooks: colour swatches and an image's channel table.

A leaf: ``ImageInfo._repr_html_`` uses it without importing the exploring tools (which
import the sources), and :mod:`minerva_dask.explore` builds on it.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from typing import Any

import numpy as np

from .colors import color_hex

__all__ = ["channel_table_html", "rendering_html", "swatch"]


def swatch(color: Sequence[float]) -> str:
    hexa = color_hex(color)
    return (
        f'<span style="display:inline-block;width:1em;height:1em;background:#{hexa};'
        f'border:1px solid #888"></span> {hexa}'
    )


def channel_table_html(info: Any) -> str:
    """An HTML table of a source's channels: index, name, default colour and window."""
    rows = "".join(
        f"<tr><td>{c.index + 1}</td><td>{html.escape(c.name)}</td><td>{swatch(c.color)}</td>"
        f"<td>{c.window[0]:g} : {c.window[1]:g}</td><td>{'yes' if c.active else 'no'}</td></tr>"
        for c in info.channels
    )
    levels = ", ".join(f"{lv.width}x{lv.height}" for lv in info.levels)
    return (
        f"<b>{html.escape(info.name)}</b>: {info.size_c} channels, {info.dtype}, "
        f"z={info.size_z}, t={info.size_t}; levels {levels}<table><tr><th>c</th>"
        f"<th>name</th><th>colour</th><th>window</th><th>active</th></tr>{rows}</table>"
    )


def _png_data_uri(rgb: np.ndarray) -> str:
    from .writers.png import encode_png

    return "data:image/png;base64," + base64.b64encode(encode_png(rgb)).decode()


def rendering_html(rendering: Any, image: np.ndarray) -> str:
    """Summary of a rendering (image, level, size, channels) with ``image``, a small
    ``(y, x, 3)`` preview of it, inline."""
    height, width = rendering.shape[:2]
    fx, _ = rendering.downsample
    channels = "".join(
        f"<li>{c.index + 1} {html.escape(rendering.image.channels[c.index].name)}: "
        f"{swatch(c.color)} window {c.start:g} : {c.end:g}"
        f"{' (inverted)' if c.inverted else ''}</li>"
        for c in rendering.plan.channels
    )
    level = f"level {rendering.level}"
    if rendering.plan.reduction > 1:
        level += f" reduced 1/{rendering.plan.reduction}"
    return (
        f"<div><b>{html.escape(rendering.image.name)}</b>: {level} "
        f"(1/{fx:g} scale), output {width} x {height} px, preset {rendering.preset}"
        f'<ul>{channels}</ul><img src="{_png_data_uri(image)}" '
        f'title="preview, {image.shape[1]} x {image.shape[0]} px"/></div>'
    )
