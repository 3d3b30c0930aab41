"""HTML for notebooks: colour swatches and an image's channel table.

A leaf: ``ImageInfo._repr_html_`` uses it without importing the exploring tools (which
import the sources), and :mod:`minerva_dask.explore` builds on it.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .colors import color_hex

__all__ = ["channel_table_html", "swatch"]


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
