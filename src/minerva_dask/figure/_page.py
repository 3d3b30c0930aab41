"""The page: panels placed at their positions, labels and scalebars drawn, with Pillow.

Page points become pixels at ``dpi / 72``; a panel's box is its rounded position and
pixel size. Labels follow OMERO.figure's export (``Figure_To_Pdf.py``, ``draw_labels``):
5 points from the panel, stacked by position; scalebars its ``draw_scalebar``: 5% of the
panel's longer side from the corner, ``length`` converted from the scalebar's unit to the
pixel size's, label centred above (bottom) or below (top). Shapes: :mod:`._shapes`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..geometry import Rect
from ._file import Figure, FigureLabel, FigurePanel
from ._layout import panel_pixels
from ._pil import pillow
from ._shapes import draw_shapes

__all__ = ["LABEL_POSITIONS", "UNIT_MICRONS", "draw_page", "pillow"]

LABEL_POSITIONS = frozenset(
    {"top", "bottom", "left", "right", "leftvert", "rightvert"}
    | {"topleft", "topright", "bottomleft", "bottomright"}
)
SPACER = 5.0  # points between a label and its panel, as OMERO.figure's export
# OMERO's length units in micrometres (omero.model.enums.UnitsLength) and their symbols
UNIT_MICRONS = {
    "ANGSTROM": (1e-4, "Å"),
    "PICOMETER": (1e-6, "pm"),
    "NANOMETER": (1e-3, "nm"),
    "MICROMETER": (1.0, "µm"),
    "MILLIMETER": (1e3, "mm"),
    "CENTIMETER": (1e4, "cm"),
    "METER": (1e6, "m"),
    "INCH": (25400.0, "in"),
}


def _rgb(hex_colour: str) -> tuple[int, int, int]:
    return tuple(int(hex_colour[i : i + 2], 16) for i in (0, 2, 4))  # type: ignore[return-value]


def _font(size_px: float) -> Any:
    """A TrueType sans font at ``size_px``: FreeSans (OMERO.figure's export) or DejaVu Sans
    where the system has one, else Pillow's own."""
    font = pillow().ImageFont
    for name in ("FreeSans.ttf", "DejaVuSans.ttf"):
        try:
            return font.truetype(name, max(1, round(size_px)))
        except OSError:
            continue
    try:
        return font.load_default(size=max(1.0, size_px))
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: its bitmap font
        return font.load_default()


_PLAIN = {"µ": "u", "Å": "A", "°": " deg"}  # for fonts without these glyphs


def _drawable(text: str, font: Any) -> str:
    """``text`` with the characters ``font`` has no glyph for spelled plainly (``µm`` as
    ``um``) rather than drawn as empty boxes."""
    try:
        missing = bytes(font.getmask("\U0010fffd"))
    except (AttributeError, TypeError, ValueError):
        return text
    for char, plain in _PLAIN.items():
        if char in text and bytes(font.getmask(char)) == missing:
            text = text.replace(char, plain)
    return text


def label_text(label: FigureLabel, panel: FigurePanel, crop: Rect) -> str:
    """The label's text with OMERO.figure's ``[property.format]`` values filled in
    (channels, image name and id, z and t index, x/y/width/height in pixels, zoom,
    rotation); other properties are left as written. Markdown ``**``/``*`` emphasis is
    dropped (the text is drawn plain)."""

    def value(match: re.Match[str]) -> str:
        prop, _, fmt = match.group(1).split(";")[0].strip().partition(".")
        viewport = {"x": crop.x, "y": crop.y, "width": crop.width, "height": crop.height}
        prop = {"w": "width", "h": "height", "c": "channels", "rot": "rotation"}.get(prop, prop)
        if prop == "channels":
            return " ".join(c.label for c in panel.channels if c.active)
        if prop == "image":
            return str(panel.image_id) if fmt == "id" else panel.name.split("/")[-1]
        if prop in viewport and fmt in ("", "pixel", "px"):
            return str(int(viewport[prop]))
        if prop == "z" and fmt in ("", "pixel", "px"):
            return str(panel.the_z + 1)
        if prop in ("t", "time") and fmt in ("", "index"):
            return str(panel.the_t + 1)
        if prop == "zoom":
            return f"{round(panel.zoom)} %"
        if prop == "rotation":
            return f"{int(panel.rotation)}°"
        return match.group(0)

    text = re.sub(r"\[(.+?)\]", value, label.text)
    text = re.sub(r"(\*\*|\*)(\S.*?)\1", r"\2", text)  # bold, italics; names keep their _
    return text.replace("\\_", "_")


class _Canvas:
    """A page image and its scale (pixels per point), with text and lines in points."""

    def __init__(self, image: Any, scale: float) -> None:
        self.image, self.scale = image, scale
        self.draw = pillow().ImageDraw.Draw(image)

    def px(self, value: float) -> int:
        """Pixels, held within a margin of the page (a scalebar of a figure file may
        reach any distance: Pillow cannot draw beyond a C int)."""
        limit = 4 * max(self.image.size)
        return round(min(max(value * self.scale, -limit), limit))

    def text(self, text: str, x: float, y: float, size: float, colour: str, align: str) -> None:
        """``text`` with its top at ``y``; ``x`` its left, centre or right (``align``),
        or for ``left-vertical``/``right-vertical`` the centre of the turned text."""
        if not text:
            return
        font = _font(size * self.scale)
        text = _drawable(text, font)
        left, top, right, bottom = self.draw.textbbox((0, 0), text, font=font)
        if align.endswith("vertical"):
            stamp = pillow().Image.new("RGBA", (right - left + 1, bottom - top + 1), (0, 0, 0, 0))
            pillow().ImageDraw.Draw(stamp).text((-left, -top), text, font=font, fill=_rgb(colour))
            stamp = stamp.rotate(90 if align == "left-vertical" else -90, expand=True)
            position = (self.px(x) - stamp.width // 2, self.px(y) - stamp.height // 2)
            self.image.paste(stamp, position, stamp)
            return
        width = right - left
        shift = {"left": 0, "center": width / 2, "right": width}[align]
        self.draw.text(
            (self.px(x) - shift - left, self.px(y) - top), text, font=font, fill=_rgb(colour)
        )

    def line(self, x0: float, y: float, x1: float, height: float, colour: str) -> None:
        left, right = sorted((self.px(x0), self.px(x1)))
        thick = max(1, self.px(height))
        top = self.px(y) - thick // 2
        if right > left:  # under half a pixel long: nothing to draw
            self.draw.rectangle((left, top, right - 1, top + thick - 1), fill=_rgb(colour))


def _labels(canvas: _Canvas, panel: FigurePanel, crop: Rect, x: float, y: float, page: str) -> None:
    w, h = panel.width, panel.height
    groups: dict[str, list[tuple[str, FigureLabel]]] = {}
    for label in panel.labels:
        colour = label.color
        if label.position in ("left", "right", "top", "bottom", "leftvert", "rightvert"):
            if colour == page == "000000":  # on the page: never invisible on it
                colour = "FFFFFF"
            elif colour == page == "FFFFFF":
                colour = "000000"
        text = label_text(label, panel, crop)
        groups.setdefault(label.position, []).append(
            (text, FigureLabel(text, label.size, label.position, colour))
        )
    for position, items in groups.items():
        labels = [lab for _, lab in items]
        if position in ("topleft", "topright"):
            lx = x + SPACER if position == "topleft" else x + w - SPACER
            ly = y + SPACER
            for lab in labels:
                canvas.text(lab.text, lx, ly, lab.size, lab.color, position[3:])
                ly += lab.size + SPACER
        elif position in ("bottomleft", "bottomright"):
            lx = x + SPACER if position == "bottomleft" else x + w - SPACER
            ly = y + h
            for lab in reversed(labels):
                ly -= lab.size + SPACER
                canvas.text(lab.text, lx, ly, lab.size, lab.color, position[6:])
        elif position == "top":
            ly = y
            for lab in reversed(labels):
                ly -= lab.size + SPACER
                canvas.text(lab.text, x + w / 2, ly, lab.size, lab.color, "center")
        elif position == "bottom":
            ly = y + h + SPACER
            for lab in labels:
                canvas.text(lab.text, x + w / 2, ly, lab.size, lab.color, "center")
                ly += lab.size + SPACER
        elif position in ("left", "right"):
            total = sum(lab.size for lab in labels) + SPACER * (len(labels) - 1)
            ly = y + (h - total) / 2
            lx, align = (x - SPACER, "right") if position == "left" else (x + w + SPACER, "left")
            for lab in labels:
                canvas.text(lab.text, lx, ly, lab.size, lab.color, align)
                ly += lab.size + SPACER
        elif position in ("leftvert", "rightvert"):
            lx = x - SPACER if position == "leftvert" else x + w + SPACER
            for lab in reversed(labels):
                step = (
                    lab.size / 2 + SPACER if position == "rightvert" else -(lab.size / 2 + SPACER)
                )
                canvas.text(
                    lab.text,
                    lx + step,
                    y + h / 2,
                    lab.size,
                    lab.color,
                    position.replace("vert", "-vertical"),
                )
                lx += 2 * step


def scalebar_points(panel: FigurePanel, crop: Rect, pixel_size: float, pixel_unit: str) -> float:
    """The scalebar's length in page points: its length in image pixels times the
    panel's points per image pixel (``width / crop width``)."""
    bar = panel.scalebar
    assert bar is not None
    length = bar.length
    if bar.units in UNIT_MICRONS and pixel_unit in UNIT_MICRONS:
        length *= UNIT_MICRONS[bar.units][0] / UNIT_MICRONS[pixel_unit][0]
    return length / pixel_size * panel.width / crop.width


def _scalebar(
    canvas: _Canvas, panel: FigurePanel, crop: Rect, x: float, y: float, pixel: tuple[float, str]
) -> None:
    bar = panel.scalebar
    assert bar is not None
    spacer = 0.05 * max(panel.width, panel.height)
    half = bar.height // 2
    right = bar.position.endswith("right")
    lx = x + panel.width - spacer if right else x + spacer
    ly = (
        y + panel.height - spacer - half if bar.position.startswith("bottom") else y + spacer + half
    )
    length = scalebar_points(panel, crop, *pixel)
    end = lx - length if right else lx + length
    canvas.line(lx, ly, end, bar.height, bar.color)
    if bar.show_label:
        symbol = UNIT_MICRONS.get(bar.units, (1.0, panel.pixel_size_x_symbol))[1]
        ty = ly - bar.font_size - 5 - half if bar.position.startswith("bottom") else ly + 5 + half
        canvas.text(
            f"{bar.length:g} {symbol}", (lx + end) / 2, ty, bar.font_size, bar.color, "center"
        )


def page_of(figure: Figure, panel: FigurePanel) -> tuple[int, float, float] | None:
    """``(page index, page x, page y)`` of the page holding the panel's centre, or None."""
    cx, cy = panel.x + panel.width / 2, panel.y + panel.height / 2
    step_x = figure.paper_width + figure.paper_spacing
    step_y = figure.paper_height + figure.paper_spacing
    col, row = int(cx // step_x), int(cy // step_y)
    index = row * figure.page_col_count + col
    if col < 0 or row < 0 or col >= figure.page_col_count or index >= figure.page_count:
        return None
    return index, col * step_x, row * step_y


def draw_page(
    figure: Figure,
    page: int,
    panels: Sequence[tuple[FigurePanel, Rect, np.ndarray]],
    dpi: float,
    pixel_sizes: Mapping[int, tuple[float, str] | None],
) -> Any:
    """Page ``page`` (0-based) as a Pillow RGB image at ``dpi``: ``panels`` are
    ``(panel, crop, pixels)``; ``pixel_sizes[panel number]`` is ``(size, unit)``."""
    pil = pillow()
    scale = dpi / 72
    width, height = panel_pixels(figure.paper_width, figure.paper_height, dpi)
    image = pil.Image.new("RGB", (width, height), _rgb(figure.page_color))
    canvas = _Canvas(image, scale)
    placed = []
    for panel, crop, rgb in panels:
        where = page_of(figure, panel)
        if where is None or where[0] != page:
            continue
        _, px, py = where
        x, y = panel.x - px, panel.y - py
        box = panel_pixels(panel.width, panel.height, dpi)
        picture = pil.Image.fromarray(rgb)
        if picture.size != box:  # the panel's own dpi differs from the page's
            picture = picture.resize(box, pil.Image.Resampling.BICUBIC)
        origin = (round(x * scale), round(y * scale))
        if panel.border is not None:  # a frame around the panel, outside it
            thick = max(1, round(panel.border[0] * scale))
            left, top = origin[0] - thick, origin[1] - thick
            right, bottom = origin[0] + box[0] + thick - 1, origin[1] + box[1] + thick - 1
            canvas.draw.rectangle((left, top, right, bottom), fill=_rgb(panel.border[1]))
        image.paste(picture, origin)
        if panel.shapes:  # over the panel only, clipped to it
            layer = draw_shapes(panel.shapes, crop, box, scale, panel)
            image.paste(layer, origin, layer)
        placed.append((panel, crop, x, y))
    for panel, crop, x, y in placed:  # drawn over every panel, as OMERO.figure does
        _labels(canvas, panel, crop, x, y, figure.page_color)
        pixel = pixel_sizes.get(panel.number)
        if panel.scalebar is not None and pixel is not None:
            _scalebar(canvas, panel, crop, x, y, pixel)
    return image
