"""OMERO's ``imgData`` JSON (``api-contract.md`` 2) as an :class:`ImageInfo`."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..colors import parse_color
from ..errors import RemoteError
from ..ome_xml import PIXEL_TYPES
from ._imgdata_checks import check_imgdata
from .base import ChannelInfo, ImageInfo, LevelInfo, default_window

__all__ = ["MAX_TILE_SIDE", "info_from_imgdata"]

MAX_TILE_SIDE = 1024  # omero.pixeldata.max_tile_length: larger tile= sizes are clamped


def info_from_imgdata(data: dict[str, Any], tile_side: int = MAX_TILE_SIDE) -> ImageInfo:
    """Turn OMERO's ``imgData`` JSON (api-contract.md 2) into an :class:`ImageInfo`.

    Levels come from ``resolutions`` when present, else from ``zoomLevelScaling`` (string
    keys, ``"0"`` = full resolution, sizes rounded); a non-pyramidal image is one level.
    Tiles are requested ``tile_side`` pixels a side (a multiple of the server's tile size
    when that is smaller).

    >>> info = info_from_imgdata({"size": {"width": 5000, "height": 3000, "z": 1, "t": 1,
    ...     "c": 1}, "meta": {"pixelsType": "uint16", "imageName": "x"}, "tiles": True,
    ...     "tile_size": {"width": 256, "height": 256},
    ...     "zoomLevelScaling": {"0": 1.0, "1": 0.5}, "channels": [{"label": "DNA",
    ...     "color": "0000FF", "window": {"start": 10, "end": 900}, "active": True}]})
    >>> [(lv.width, lv.height, lv.tile_width) for lv in info.levels]
    [(5000, 3000, 1024), (2500, 1500, 1024)]
    """
    check_imgdata(data, PIXEL_TYPES)  # one line naming a field that is unusable
    try:
        size = data["size"]
        width, height = int(size["width"]), int(size["height"])
        meta = data.get("meta", {})
        dtype = np.dtype(PIXEL_TYPES[meta.get("pixelsType", "uint16")])
    except (KeyError, TypeError, ValueError) as exc:
        raise RemoteError(f"imgData is missing or has a bad {exc}") from None
    levels = []
    if data.get("tiles") and data.get("zoomLevelScaling"):
        native = data.get("tile_size", {})
        tile_w = _grouped(int(native.get("width", 256)), tile_side)
        tile_h = _grouped(int(native.get("height", 256)), tile_side)
        scaling = data["zoomLevelScaling"]
        resolutions = data.get("resolutions") or {}
        for key in sorted(scaling, key=int):
            scale = float(scaling[key])
            if key in resolutions:
                w, h = int(resolutions[key]["sizeX"]), int(resolutions[key]["sizeY"])
            else:
                w, h = max(1, round(width * scale)), max(1, round(height * scale))
            levels.append(LevelInfo(w, h, tile_w, tile_h, (1 / scale, 1 / scale)))
    else:
        levels.append(LevelInfo(width, height, min(width, tile_side), min(height, tile_side)))
    channels = []
    for i, channel in enumerate(data.get("channels", [])):
        window = channel.get("window") or {}
        start, end = window.get("start"), window.get("end")
        if not (isinstance(start, int | float) and isinstance(end, int | float)) or start > end:
            start, end = default_window(dtype)
        color = _rgb(channel.get("color", "FFFFFF"))
        channels.append(
            ChannelInfo(
                i,
                str(channel.get("label", i)),
                color,
                (float(start), float(end)),
                bool(channel.get("active", True)),
            )
        )
    pixel_size = data.get("pixel_size") or {}
    pixel_size_um = None
    if isinstance(pixel_size.get("x"), int | float) and isinstance(
        pixel_size.get("y"), int | float
    ):
        pixel_size_um = (float(pixel_size["x"]), float(pixel_size["y"]))
    return ImageInfo(
        name=str(meta.get("imageName", data.get("id", ""))),
        dtype=dtype,
        size_c=int(size.get("c", len(channels))),
        size_z=int(size.get("z", 1)),
        size_t=int(size.get("t", 1)),
        levels=tuple(levels),
        channels=tuple(channels),
        pixel_size_um=pixel_size_um,
    )


def _grouped(native: int, side: int) -> int:
    """The largest multiple of the server's tile size that fits in ``side``."""
    return native * max(1, side // native) if native <= side else side


def _rgb(text: str) -> tuple[float, float, float]:
    try:
        return parse_color(text)[0]
    except ValueError:
        return (1.0, 1.0, 1.0)
