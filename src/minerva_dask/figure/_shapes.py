"""Shapes on a panel (ROIs): read from the figure file, mapped to the page, drawn.

Shapes are in full-resolution image pixels; ``strokeWidth`` is in page points from format
version 3 (image pixels before, scaled by the panel's points per image pixel when
drawn), named ``lineWidth`` before version 4; an ellipse is ``cx, cy, rx, ry`` before
version 2. Every shape becomes a list of image points (a rectangle its four corners, an
ellipse 72 points of its outline, each turned by the shape's ``rotation`` and
``transform``), mapped as OMERO.figure's export maps them (``get_panel_coords``): flips,
the panel's rotation about the crop's centre, then the crop's origin and scale. They are
drawn on the page only (panel PNGs stay the pure render), clipped to the panel.
Arrowheads follow the export: ``4 * strokeWidth + 5`` points long, 0.4 rad each side.
``Text`` shapes and unknown types are not drawn (counted in ``skipped``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError
from ..geometry import Rect
from ._pil import pillow

__all__ = ["Shape", "draw_shapes", "parse_shapes"]

POINT_RADIUS = 5.0  # points, as the export's PDF


@dataclass(frozen=True, slots=True)
class Shape:
    """A shape as points in image pixels; ``kind`` polygon, polyline, arrow or point;
    colours RGBA 0-255; ``stroke_width`` in points (image pixels if ``image_units``)."""

    kind: str
    points: tuple[tuple[float, float], ...]
    stroke: tuple[int, int, int, int]
    stroke_width: float
    fill: tuple[int, int, int, int] | None = None
    image_units: bool = False


def _rgba(text: Any, default: str) -> tuple[int, int, int, int]:
    value = str(text or default).lstrip("#")
    try:
        rgba = [int(value[i : i + 2], 16) for i in range(0, min(len(value), 8), 2)]
    except ValueError:
        raise RequestError(f"shape colour {text!r} is not #RRGGBB[AA]") from None
    if len(rgba) < 3:
        raise RequestError(f"shape colour {text!r} is not #RRGGBB[AA]")
    return (*rgba[:3], rgba[3] if len(rgba) > 3 else 255)  # type: ignore[return-value]


def _finite(value: Any, name: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} {value!r} is not a finite number >= 0")
    return number


def _turned(point: tuple[float, float], centre: tuple[float, float], degrees: float):
    """``point`` turned ``degrees`` clockwise (screen axes, y down) about ``centre``."""
    angle = math.radians(degrees)
    dx, dy = point[0] - centre[0], point[1] - centre[1]
    return (
        centre[0] + dx * math.cos(angle) - dy * math.sin(angle),
        centre[1] + dx * math.sin(angle) + dy * math.cos(angle),
    )


def _transformed(points: list[tuple[float, float]], raw: dict[str, Any]) -> list:
    t = raw.get("transform")
    if not t:
        return points
    return [
        (x * t["A00"] + y * t["A01"] + t["A02"], x * t["A10"] + y * t["A11"] + t["A12"])
        for x, y in points
    ]


def _outline(raw: dict[str, Any], version: int) -> tuple[str, list[tuple[float, float]]]:
    kind = str(raw.get("type", "")).lower()
    if kind == "rectangle":
        x, y, w, h = (float(raw[k]) for k in ("x", "y", "width", "height"))
        corners = [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]
        turned = [
            _turned(p, (x + w / 2, y + h / 2), float(raw.get("rotation") or 0)) for p in corners
        ]
        return "polygon", _transformed(turned, raw)
    if kind == "ellipse":
        keys = (
            ("cx", "cy", "rx", "ry")
            if version < 2 and "cx" in raw
            else ("x", "y", "radiusX", "radiusY")
        )
        cx, cy, rx, ry = (float(raw[k]) for k in keys)
        ring = [
            (cx + rx * math.cos(2 * math.pi * i / 72), cy + ry * math.sin(2 * math.pi * i / 72))
            for i in range(72)
        ]
        turned = [_turned(p, (cx, cy), float(raw.get("rotation") or 0)) for p in ring]
        return "polygon", _transformed(turned, raw)
    if kind in ("line", "arrow"):
        ends = [(float(raw["x1"]), float(raw["y1"])), (float(raw["x2"]), float(raw["y2"]))]
        return ("polyline" if kind == "line" else "arrow"), _transformed(ends, raw)
    if kind in ("polygon", "polyline"):
        points = []
        for pair in str(raw["points"]).split():
            x, y = pair.split(",")[:2]  # older files may write 'x,y,'
            points.append((float(x), float(y)))
        return kind, _transformed(points, raw)
    if kind == "point":
        return "point", _transformed([(float(raw["x"]), float(raw["y"]))], raw)
    return "", []


def parse_shapes(raws: Sequence[Any], version: int, where: str) -> tuple[tuple[Shape, ...], int]:
    """The drawable shapes of a panel, and how many were skipped (text, unknown types)."""
    shapes, skipped = [], 0
    for raw in raws:
        if not isinstance(raw, dict):
            raise RequestError(f"{where}: a shape is not a JSON object")
        what = f"{where}: {raw.get('type')} shape"
        try:
            kind, points = _outline(raw, version)
            if not kind or not points:
                skipped += 1
                continue
            width = raw.get("strokeWidth", raw.get("lineWidth", 2) if version < 4 else 2)
            width = _finite(width, "strokeWidth")
            fill = _rgba(raw.get("fillColor"), "#00000000")
            if "fillOpacity" in raw:
                opacity = min(max(_finite(raw["fillOpacity"], "fillOpacity"), 0.0), 1.0)
                fill = (*fill[:3], round(opacity * 255))
            stroke = _rgba(raw.get("strokeColor"), "#FFFFFF")
        except KeyError as exc:
            raise RequestError(f"{what} without {exc}") from None
        except RequestError as exc:  # a colour
            raise RequestError(f"{what}: {exc}") from None
        except (ValueError, TypeError, ArithmeticError) as exc:  # ours, float('x'), math
            raise RequestError(f"{what}: a value it cannot be drawn with ({exc})") from None
        shapes.append(
            Shape(
                kind=kind,
                points=tuple(points),
                stroke=stroke,
                stroke_width=width,
                fill=fill if fill[3] and kind in ("polygon", "point") else None,
                image_units=version < 3,
            )
        )
    return tuple(shapes), skipped


def panel_point(point, crop: Rect, rotation: float, flips: tuple[bool, bool], scale: float):
    """An image point in points from the panel's top left (``get_panel_coords``)."""
    x, y = point
    h_flip, v_flip = flips
    if h_flip:
        x = crop.width - x + 2 * crop.x
    if v_flip:
        y = crop.height - y + 2 * crop.y
    if v_flip != h_flip:
        rotation = -rotation
    if rotation:
        x, y = _turned((x, y), (crop.x + crop.width / 2, crop.y + crop.height / 2), rotation)
    return (x - crop.x) * scale, (y - crop.y) * scale


def draw_shapes(
    shapes: Sequence[Shape],
    crop: Rect,
    box: tuple[int, int],
    px_per_pt: float,
    panel: Any,
) -> Any:
    """The shapes on a transparent RGBA layer the size of the panel's ``box`` (pixels)."""
    pil = pillow()
    layer = pil.Image.new("RGBA", box, (0, 0, 0, 0))
    draw = pil.ImageDraw.Draw(layer)
    scale = panel.width / crop.width  # points per image pixel
    flips = (panel.horizontal_flip, panel.vertical_flip)
    for shape in shapes:
        pts = [
            tuple(v * px_per_pt for v in panel_point(p, crop, panel.rotation, flips, scale))
            for p in shape.points
        ]
        limit = 2 * max(box)  # wider strokes cover the panel all the same (Pillow: a C int)
        width_pt = min(shape.stroke_width * (scale if shape.image_units else 1.0), limit)
        width = max(1, round(min(width_pt * px_per_pt, limit)))
        if shape.kind == "point":
            (x, y), r = pts[0], POINT_RADIUS * px_per_pt
            draw.ellipse(
                (x - r, y - r, x + r, y + r), fill=shape.fill, outline=shape.stroke, width=width
            )
        elif shape.kind == "arrow":
            _arrow(draw, pts, shape, width, (4 * width_pt + 5) * px_per_pt)
        else:
            if shape.fill is not None:
                draw.polygon(pts, fill=shape.fill)
            closed = shape.kind == "polygon"
            draw.line(
                pts + pts[:1] if closed else pts, fill=shape.stroke, width=width, joint="curve"
            )
    return layer


def _arrow(draw: Any, pts: list, shape: Shape, width: int, head: float) -> None:
    (x1, y1), (x2, y2) = pts
    length = math.hypot(x2 - x1, y2 - y1) or 1.0
    ux, uy = (x2 - x1) / length, (y2 - y1) / length
    side = [
        (
            x2 - head * (ux * math.cos(a) - uy * math.sin(a)),
            y2 - head * (uy * math.cos(a) + ux * math.sin(a)),
        )
        for a in (0.4, -0.4)
    ]
    draw.line([(x1, y1), (x2 - ux * head / 2, y2 - uy * head / 2)], fill=shape.stroke, width=width)
    draw.polygon([(x2, y2), *side], fill=shape.stroke, outline=shape.stroke)
