"""Colours: hex strings, names and OME's signed int32 colours to RGB, and back.

One place for every colour conversion (style.md: colours are normalised once, at the
edge). RGB is a triple of floats in 0..1 unless a name says ``bytes`` (0..255 ints).
Imports nothing of ours but the error tree.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import RequestError

__all__ = [
    "BACKGROUNDS",
    "color_from_ome_int",
    "color_hex",
    "parse_background",
    "parse_color",
]

_HEX = re.compile(r"[0-9A-Fa-f]+")
BACKGROUNDS = {"black": "000000", "white": "FFFFFF", "omero": "DDDDDD", "grey": "DDDDDD"}
"""Named backgrounds; ``omero`` is OMERO.figure's grey padding."""


def parse_color(text: str) -> tuple[tuple[float, float, float], float]:
    """Parse an OMERO hex colour into ``((r, g, b), alpha)``, each in 0..1.

    Accepts ``RGB``, ``RGBA``, ``RRGGBB`` and ``RRGGBBAA`` with or without a leading ``#``
    (OMERO's ``splitHTMLColor``: short forms have each digit doubled).

    >>> parse_color("F00")
    ((1.0, 0.0, 0.0), 1.0)
    >>> parse_color("00FF0080")[1]
    0.5019607843137255
    """
    digits = text[1:] if text.startswith("#") else text
    if len(digits) not in (3, 4, 6, 8) or not _HEX.fullmatch(digits):
        raise RequestError(
            f"colour {text!r} is not 3, 4, 6 or 8 hexadecimal digits (RGB, RGBA, RRGGBB, RRGGBBAA)"
        )
    if len(digits) in (3, 4):
        digits = "".join(ch * 2 for ch in digits)
    values = [int(digits[i : i + 2], 16) / 255 for i in range(0, len(digits), 2)]
    alpha = values[3] if len(values) == 4 else 1.0
    return (values[0], values[1], values[2]), alpha


def color_hex(rgb: Sequence[float], alpha: float = 1.0) -> str:
    """``RRGGBB`` of an RGB triple in 0..1, with ``AA`` appended when ``alpha`` is not 1.

    >>> color_hex((1.0, 0.5, 0.0)), color_hex((0.0, 0.0, 1.0), 0.5)
    ('FF8000', '0000FF80')
    """
    text = "".join(f"{round(v * 255):02X}" for v in rgb)
    return text if alpha == 1.0 else text + f"{round(alpha * 255):02X}"


def parse_background(color: str | Sequence[int]) -> tuple[int, int, int]:
    """Background colour from a hex string (``"#DDDDDD"``, ``"000"``), a name
    (``black``, ``white``, ``omero`` = ``#DDDDDD``) or an RGB triple of 0..255 ints.

    >>> parse_background("omero"), parse_background("#FFF")
    ((221, 221, 221), (255, 255, 255))
    """
    if isinstance(color, str):
        rgb, _ = parse_color(BACKGROUNDS.get(color.lower(), color))
        return tuple(round(v * 255) for v in rgb)  # type: ignore[return-value]
    values = tuple(int(v) for v in color)
    if len(values) != 3 or not all(0 <= v <= 255 for v in values):
        raise RequestError(f"background {color!r} is not three integers in 0..255")
    return values  # type: ignore[return-value]


def color_from_ome_int(value: int) -> tuple[tuple[float, float, float], float]:
    """Split an OME signed int32 RGBA colour into ``((r, g, b), alpha)`` in 0..1.

    >>> color_from_ome_int(-1)
    ((1.0, 1.0, 1.0), 1.0)
    >>> color_from_ome_int(-16776961)[0]
    (1.0, 0.0, 0.0)
    """
    rgba = value & 0xFFFFFFFF
    r, g, b, a = (rgba >> 24) & 255, (rgba >> 16) & 255, (rgba >> 8) & 255, rgba & 255
    return (r / 255, g / 255, b / 255), a / 255
