"""Check OMERO's ``imgData`` JSON before building levels from it (``api-contract.md`` 2).

A server (or a proxy, or a hand-written file) may answer sizes that are negative, zero,
fractional, strings or absurd; each is refused with one line naming the field, as a
:class:`~minerva_dask.errors.RemoteError` (the server's answer is at fault).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from ..errors import RemoteError

__all__ = ["MAX_LEVELS", "MAX_SIDE", "check_imgdata"]

MAX_SIDE = 2**31 - 1  # OMERO stores sizes as Java ints
MAX_CHANNELS = 2**16
MAX_LEVELS = 64  # halving 64 times reaches one pixel from any int64 size
MAX_TILE_SIDE = 2**16


def _bad(field: str, value: Any, need: str) -> RemoteError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return RemoteError(f"imgData {field} is {shown}: {need}")


def _int(node: dict[str, Any], key: str, field: str, top: int, *, required: bool) -> None:
    if key not in node:
        if required:
            raise _bad(field, None, "it is missing")
        return
    value = node[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
        raise _bad(field, value, f"an integer from 1 to {top} is needed")


def _object(data: dict[str, Any], key: str, *, required: bool) -> dict[str, Any]:
    value = data.get(key)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(key, value, "an object is needed")
    return value


def check_imgdata(data: dict[str, Any], pixel_types: Iterable[str]) -> None:
    """Raise :class:`RemoteError` naming the first field of ``data`` that is unusable.

    >>> check_imgdata({"size": {"width": 0, "height": 5}}, ["uint8"])
    Traceback (most recent call last):
    ...
    minerva_dask.errors.RemoteError: imgData size.width is 0: an integer from 1 to 2147483647 is needed
    """  # noqa: E501
    size = _object(data, "size", required=True)
    for key in ("width", "height"):
        _int(size, key, f"size.{key}", MAX_SIDE, required=True)
    _int(size, "c", "size.c", MAX_CHANNELS, required=False)
    for key in ("z", "t"):
        _int(size, key, f"size.{key}", MAX_SIDE, required=False)
    meta = _object(data, "meta", required=False)
    if "pixelsType" in meta and meta["pixelsType"] not in set(pixel_types):
        raise _bad("meta.pixelsType", meta["pixelsType"], f"one of {sorted(pixel_types)}")
    channels = data.get("channels", [])
    if not isinstance(channels, list):
        raise _bad("channels", channels, "a list is needed")
    for i, channel in enumerate(channels):
        if not isinstance(channel, dict):
            raise _bad(f"channels[{i}]", channel, "an object is needed")
        if not isinstance(channel.get("color", ""), str):
            raise _bad(f"channels[{i}].color", channel["color"], "'RRGGBB' is needed")
    if "c" in size and len(channels) != size["c"]:
        raise _bad("channels", f"{len(channels)} entries", f"size.c is {size['c']}")
    if "levels" in data and data["levels"] is not None:
        _int(data, "levels", "levels", MAX_LEVELS, required=False)
    if not (data.get("tiles") and data.get("zoomLevelScaling")):
        return
    tile_size = _object(data, "tile_size", required=False)
    for key in ("width", "height"):
        _int(tile_size, key, f"tile_size.{key}", MAX_TILE_SIDE, required=False)
    scaling = data["zoomLevelScaling"]
    if not isinstance(scaling, dict):
        raise _bad("zoomLevelScaling", scaling, "an object of level: factor is needed")
    if len(scaling) > MAX_LEVELS:
        raise _bad("zoomLevelScaling", f"{len(scaling)} levels", f"at most {MAX_LEVELS}")
    for key, factor in scaling.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(scaling)):
            raise _bad(f"zoomLevelScaling key {key!r}", key, "levels are '0', '1', ...")
        if (
            isinstance(factor, bool)
            or not isinstance(factor, int | float)
            or not math.isfinite(factor)
            or not 0 < factor <= 1
        ):
            raise _bad(f"zoomLevelScaling[{key!r}]", factor, "a factor above 0, at most 1")
    resolutions = _object(data, "resolutions", required=False)
    for key, resolution in resolutions.items():
        if not isinstance(resolution, dict):
            raise _bad(f"resolutions[{key!r}]", resolution, "an object is needed")
        for axis in ("sizeX", "sizeY"):
            _int(resolution, axis, f"resolutions[{key!r}].{axis}", MAX_SIDE, required=True)
