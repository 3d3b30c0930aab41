"""OMERO.figure files (JSON, versions 1-6) read into frozen records.

The format is ome/omero-figure's ``docs/figure_file_format.rst``; older versions are
brought up to version 6 as its version history says (and as the export script
``Figure_To_Pdf.py`` does): ``pixel_size`` becomes ``pixel_size_x``/``pixel_size_y``
(before 1), ``export_dpi`` becomes ``min_export_dpi`` (before 3), a scalebar without
``units`` measures in the panel's pixel unit, micrometres unless said (before 5), and a
``time`` label becomes the text ``[time.FORMAT]`` (before 6); shapes as
:mod:`._shapes` says. Missing or null ``dx``/``dy``
are 0, as the export script takes them (omero-figure #257, #292).

Units: a panel's ``x``, ``y``, ``width``, ``height`` and the paper size are page points
(1/72 inch); ``zoom`` is a percentage; ``dx``, ``dy``, ``orig_width``, ``orig_height`` are
full-resolution image pixels; ``rotation`` is degrees clockwise.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Any

from ..errors import RequestError, SourceNotFoundError
from ._shapes import Shape, parse_shapes

__all__ = ["Figure", "FigureChannel", "FigureLabel", "FigurePanel", "Scalebar", "read_figure"]

logger = logging.getLogger(__name__)

NEWEST_VERSION = 6


@dataclass(frozen=True, slots=True)
class FigureChannel:
    """One channel of a panel: ``start``/``end`` in raw pixel values, ``color`` hex
    ``RRGGBB`` or a LUT name (``cool.lut``)."""

    label: str
    color: str
    start: float
    end: float
    active: bool = True
    inverted: bool = False


@dataclass(frozen=True, slots=True)
class FigureLabel:
    """A text label: ``size`` in points, ``position`` one of OMERO.figure's (``top``,
    ``topleft``, ``leftvert``...), ``color`` hex ``RRGGBB``."""

    text: str
    size: float
    position: str
    color: str


@dataclass(frozen=True, slots=True)
class Scalebar:
    """A scalebar ``length`` long in ``units`` (OMERO's unit names, e.g. ``MICROMETER``);
    ``height`` and ``font_size`` in points."""

    length: float
    units: str
    position: str = "bottomright"
    color: str = "FFFFFF"
    show_label: bool = False
    font_size: float = 10.0
    height: float = 3.0


@dataclass(frozen=True, slots=True)
class FigurePanel:
    """One panel: where it sits on the page and what it shows (units: module docstring).

    ``number`` is the panel's 1-based place in the file; ``pixel_size_x`` is the size of
    a full-resolution pixel in ``pixel_size_x_unit`` (OMERO's unit name), when known.
    """

    number: int
    image_id: str
    name: str
    x: float
    y: float
    width: float
    height: float
    orig_width: float
    orig_height: float
    channels: tuple[FigureChannel, ...]
    zoom: float = 100.0
    dx: float = 0.0
    dy: float = 0.0
    rotation: float = 0.0
    the_z: int = 0
    the_t: int = 0
    min_export_dpi: float | None = None
    pixel_size_x: float | None = None
    pixel_size_x_unit: str = "MICROMETER"
    pixel_size_x_symbol: str = "µm"
    scalebar: Scalebar | None = None
    labels: tuple[FigureLabel, ...] = ()
    horizontal_flip: bool = False
    vertical_flip: bool = False
    z_projection: bool = False
    shapes: tuple[Shape, ...] = ()
    shapes_skipped: int = 0
    border: tuple[float, str] | None = None  # (strokeWidth in points, RRGGBB)

    @property
    def title(self) -> str:
        """How messages name this panel: ``panel 2 (image 123, 'name')``."""
        return f"panel {self.number} (image {self.image_id}, {self.name!r})"


@dataclass(frozen=True, slots=True)
class Figure:
    """A whole figure: its panels in file order and the page (points)."""

    version: int
    name: str
    paper_width: float
    paper_height: float
    panels: tuple[FigurePanel, ...]
    page_color: str = "FFFFFF"
    page_count: int = 1
    page_col_count: int = 1
    paper_spacing: float = 50.0


MAX_PAGES = 1000


def read_figure(figure: str | os.PathLike[str] | dict[str, Any]) -> Figure:
    """Read an OMERO.figure file (a path, or the JSON already loaded) into a :class:`Figure`.

    >>> fig = read_figure({"version": 6, "paper_width": 595, "paper_height": 842, "panels": [
    ...     {"imageId": 1, "name": "a.tif", "x": 10, "y": 20, "width": 100, "height": 50,
    ...      "orig_width": 400, "orig_height": 200, "zoom": 200, "dx": 5, "dy": 0,
    ...      "channels": [{"color": "FF0000", "window": {"start": 0, "end": 99},
    ...                    "active": True}]}]})
    >>> fig.panels[0].title, fig.panels[0].channels[0].end
    ("panel 1 (image 1, 'a.tif')", 99.0)
    """
    if isinstance(figure, dict):
        data, where = figure, "figure"
    else:
        where = os.fspath(figure)
        if not os.path.exists(where):
            raise SourceNotFoundError(f"no such figure file: {where}")
        if not os.path.isfile(where):  # a folder, a device, a pipe
            raise RequestError(f"{where} is not a file: give the figure's JSON file")
        try:
            with open(where, encoding="utf-8-sig") as fh:  # a BOM, as some editors save
                data = json.load(fh)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RequestError(f"{where} is not an OMERO.figure JSON file: {exc}") from None
        except RecursionError:
            raise RequestError(
                f"{where} is not an OMERO.figure JSON file: nested too deep to read"
            ) from None
    if not isinstance(data, dict) or not isinstance(data.get("panels"), list):
        raise RequestError(f"{where} is not an OMERO.figure file: no list of 'panels'")
    version = data.get("version") or 0
    if not isinstance(version, int) or version < 0:
        raise RequestError(f"{where}: figure version {version!r} is not a whole number")
    if version > NEWEST_VERSION:
        logger.warning(
            "%s is figure format version %d; versions up to %d are known: settings added "
            "after version %d are not drawn",
            where,
            version,
            NEWEST_VERSION,
            NEWEST_VERSION,
        )
    if not data["panels"]:
        raise RequestError(f"{where}: the figure has no panels")
    panels = tuple(_panel(p, i + 1, version) for i, p in enumerate(data["panels"]))
    return Figure(
        version=version,
        name=str(data.get("figureName") or "figure"),
        paper_width=_number(data.get("paper_width", 595), "paper_width", where, positive=True),
        paper_height=_number(data.get("paper_height", 842), "paper_height", where, positive=True),
        panels=panels,
        page_color=_hex(data.get("page_color") or "FFFFFF", "page_color", where),
        page_count=_count(data.get("page_count") or 1, "page_count", where),
        page_col_count=_count(data.get("page_col_count") or 1, "page_col_count", where),
        paper_spacing=_number(
            data.get("paper_spacing") or 50, "paper_spacing", where, positive=True
        ),
    )


def _number(value: Any, name: str, where: str, *, positive: bool = False) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise RequestError(f"{where}: {name} {value!r} is not a number") from None
    if not math.isfinite(number) or (positive and number <= 0):
        wanted = "a finite number > 0" if positive else "a finite number"
        raise RequestError(f"{where}: {name} {value!r} must be {wanted}")
    return number


def _count(value: Any, name: str, where: str) -> int:
    """A page count: a whole number from 1 to ``MAX_PAGES`` (a figure file of unknown
    origin must not make us write a billion pages)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_PAGES:
        raise RequestError(f"{where}: {name} {value!r} is not a whole number from 1 to {MAX_PAGES}")
    return value


def _hex(value: Any, name: str, where: str) -> str:
    text = str(value).lstrip("#").upper()
    if len(text) != 6 or any(ch not in "0123456789ABCDEF" for ch in text):
        raise RequestError(f"{where}: {name} {value!r} is not an RRGGBB colour")
    return text


def _panel(raw: Any, number: int, version: int) -> FigurePanel:
    if not isinstance(raw, dict):
        raise RequestError(f"figure panel {number} is not a JSON object")
    image_id = raw.get("imageId")
    if isinstance(image_id, float) and image_id.is_integer():
        image_id = int(image_id)  # 123.0 is image 123
    name = str(raw.get("name") or f"image {image_id}")
    where = f"panel {number} (image {image_id}, {name!r})"
    for key in ("imageId", "x", "y", "width", "height", "orig_width", "orig_height", "channels"):
        if raw.get(key) is None:
            raise RequestError(f"{where}: the figure file gives no {key!r}")
    num = {
        key: _number(raw[key], key, where, positive=key in _POSITIVE)
        for key in ("x", "y", "width", "height", "orig_width", "orig_height")
    }
    pixel_size = raw.get("pixel_size_x")
    if version < 1 and pixel_size is None:
        pixel_size = raw.get("pixel_size")  # before version 1: one pixel size
    dpi = raw.get("min_export_dpi")
    if version < 3 and dpi is None:
        dpi = raw.get("export_dpi")
    pixel_unit = str(raw.get("pixel_size_x_unit") or "MICROMETER")
    channels = tuple(_channel(c, i, where) for i, c in enumerate(raw["channels"]))
    shapes, skipped = parse_shapes(raw.get("shapes") or (), version, where)
    if not channels:
        raise RequestError(f"{where}: the panel lists no channels")
    return FigurePanel(
        number=number,
        image_id=str(image_id),
        name=name,
        channels=channels,
        zoom=_number(raw.get("zoom", 100), "zoom", where, positive=True),
        dx=_number(raw.get("dx") or 0, "dx", where),
        dy=_number(raw.get("dy") or 0, "dy", where),
        rotation=_number(raw.get("rotation") or 0, "rotation", where),
        the_z=_index(raw.get("theZ"), "theZ", where),
        the_t=_index(raw.get("theT"), "theT", where),
        min_export_dpi=None
        if dpi is None
        else _number(dpi, "min_export_dpi", where, positive=True),
        pixel_size_x=None if pixel_size is None else _number(pixel_size, "pixel_size_x", where),
        pixel_size_x_unit=pixel_unit,
        pixel_size_x_symbol=str(raw.get("pixel_size_x_symbol") or "µm"),
        scalebar=_scalebar(raw.get("scalebar"), pixel_unit, where),
        labels=tuple(_label(lab, version, where) for lab in raw.get("labels") or ()),
        horizontal_flip=bool(raw.get("horizontal_flip")),
        vertical_flip=bool(raw.get("vertical_flip")),
        z_projection=bool(raw.get("z_projection")),
        shapes=shapes,
        shapes_skipped=skipped,
        border=_border(raw.get("border"), where),
        **num,
    )


_POSITIVE = frozenset({"width", "height", "orig_width", "orig_height"})


def _index(value: Any, name: str, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise RequestError(f"{where}: {name} {value!r} is not an index >= 0")
    if value != int(value):
        raise RequestError(f"{where}: {name} {value!r} is not a whole number")
    return int(value)


def _channel(raw: Any, index: int, where: str) -> FigureChannel:
    what = f"{where}, channel {index + 1}"
    if not isinstance(raw, dict) or not isinstance(raw.get("window"), dict):
        raise RequestError(f"{what}: no window {{start, end}}")
    color = str(raw.get("color") or "FFFFFF")
    if not color.lower().endswith(".lut"):
        color = _hex(color, "color", what)
    return FigureChannel(
        label=str(raw.get("label") or index + 1),
        color=color,
        start=_number(raw["window"].get("start"), "window start", what),
        end=_number(raw["window"].get("end"), "window end", what),
        active=bool(raw.get("active", True)),
        inverted=bool(raw.get("reverseIntensity") or raw.get("inverted")),
    )


def _label(raw: Any, version: int, where: str) -> FigureLabel:
    if not isinstance(raw, dict):
        raise RequestError(f"{where}: a label is not a JSON object")
    text = raw.get("text")
    if version < 6 and raw.get("time"):  # before 6: {'time': 'secs'} instead of a text
        text = f"[time.{raw['time']}]"
    return FigureLabel(
        text=str(text or ""),
        size=_number(raw.get("size") or 12, "label size", where, positive=True),
        position=str(raw.get("position") or "top"),
        color=_hex(raw.get("color") or "000000", "label color", where),
    )


def _border(raw: Any, where: str) -> tuple[float, str] | None:
    if not isinstance(raw, dict) or not raw.get("showBorder"):
        return None
    width = _number(raw.get("strokeWidth") or 2, "border strokeWidth", where, positive=True)
    return width, _hex(raw.get("color") or "000000", "border color", where)


def _scalebar(raw: Any, pixel_unit: str, where: str) -> Scalebar | None:
    if not isinstance(raw, dict) or not raw.get("show"):
        return None
    font_size = raw.get("font_size") or 10
    return Scalebar(
        length=_number(raw.get("length"), "scalebar length", where, positive=True),
        units=str(raw.get("units") or pixel_unit),  # before 5: the pixel size's unit
        position=str(raw.get("position") or "bottomright"),
        color=_hex(raw.get("color") or "FFFFFF", "scalebar color", where),
        show_label=bool(raw.get("show_label")),
        font_size=_number(font_size, "scalebar font_size", where, positive=True),
        height=_number(raw.get("height") or 3, "scalebar height", where, positive=True),
    )
