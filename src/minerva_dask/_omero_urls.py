"""The URL forms OMERO.figure and OMERO.web emit for a rendered plane or region.

Used by :func:`minerva_dask.request_url.parse_request`. Each form is an endpoint under an app,
after the OMERO.web root (which may carry a deployment prefix such as ``/omero/``)::

    {root}/figure/render_scaled_region/{id}/{z}/{t}/?c=...&region=x,y,w,h   OMERO.figure, big images
    {root}/webgateway/render_image/{id}/{z}/{t}/?c=...&maps=...&m=c          the whole plane
    {root}/webclient/render_image/{id}/{z}/{t}/?c=...                        same, webclient's copy
    {root}/webgateway/render_image_region/{id}/{z}/{t}/?region=x,y,w,h       full resolution
    {root}/webgateway/render_image_region/{id}/{z}/{t}/?tile=level,tx,ty[,tw,th]
    (also webclient/render_image_region and webgateway/render_image_region_rdef)

What each means here (``api-contract.md`` 1.1, 1.6, 1.7, 3):

* ``render_scaled_region`` and the bare ``/{id}/{z}/{t}/`` form: ``region`` at most
  ``max_size`` (default 2000) a side.
* ``render_image``: the whole image (no ``region``), at most ``max_size`` a side (default
  2000; OMERO.web sends the plane at full size, which OMERO.figure uses only below
  3192 x 3192 pixels).
* ``render_image_region`` with ``region``: OMERO.web answers at full resolution, so
  ``max_size`` defaults to the region's longest side.
* ``tile=level,tx,ty[,tw,th]``: the tile ``(tx, ty)`` of level ``level`` (0 = full
  resolution), ``tw x th`` pixels of that level (default and values <= 0: the level's tile
  size; over 1024 clamped to 1024, as OMERO.web does), clipped at the level's right and
  bottom edges. It needs the image's levels, so it becomes a region when the request meets
  the image (:func:`tile_region`).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from .errors import RequestError
from .geometry import Rect

if TYPE_CHECKING:
    from .sources.base import ImageInfo

__all__ = [
    "ENDPOINTS",
    "MAX_TILE_LENGTH",
    "native_max_size",
    "parse_tile",
    "split_endpoint",
    "tile_region",
]

# app/endpoint -> the endpoint's kind
ENDPOINTS = {
    "figure/render_scaled_region": "render_scaled_region",
    "webgateway/render_image_region_rdef": "render_image_region",
    "webgateway/render_image_region": "render_image_region",
    "webclient/render_image_region": "render_image_region",
    "webgateway/render_image": "render_image",
    "webclient/render_image": "render_image",
}
# OMERO.web's fallback for omero.pixeldata.max_tile_length (WEB views.py render_image_region)
MAX_TILE_LENGTH = 1024
_ENDPOINT = re.compile(
    r"(?:^|/)(" + "|".join(re.escape(k) for k in ENDPOINTS) + r")(?=/|$)"  # longest first
)


def split_endpoint(path: str) -> tuple[str, str | None, str]:
    """Split a URL path into ``(root, kind, rest)``.

    ``root`` is what precedes the app (the OMERO.web root, with any deployment prefix),
    ``kind`` the endpoint's kind (``None`` for a bare ``/{id}/{z}/{t}/`` path) and ``rest``
    the ``{id}/{z}/{t}/`` part.

    >>> split_endpoint("/omero/webgateway/render_image/5/0/0/")
    ('/omero', 'render_image', '/5/0/0/')
    >>> split_endpoint("/5/0/0/")
    ('', None, '/5/0/0/')
    """
    match = _ENDPOINT.search(path)
    if match is None:
        return "", None, path
    root = path[: match.start(1)].rstrip("/")
    return root, ENDPOINTS[match.group(1)], path[match.end(1) :]


def parse_tile(text: str) -> tuple[int, int, int, int, int]:
    """``tile=level,tx,ty[,tw,th]`` as five integers (``tw``/``th`` 0: the level's tile size).

    >>> parse_tile("2,3,1")
    (2, 3, 1, 0, 0)
    >>> parse_tile("0,12,7,512,-1")
    (0, 12, 7, 512, 0)
    """
    values = text.split(",")
    if len(values) not in (3, 5) or not all(re.fullmatch(r"-?[0-9]{1,9}", v) for v in values):
        raise RequestError(f"tile {text!r} must be level,tx,ty or level,tx,ty,tw,th (integers)")
    level, tx, ty, *size = (int(v) for v in values)
    for name, value in (("level", level), ("tx", tx), ("ty", ty)):
        if value < 0:
            raise RequestError(f"tile {text!r}: {name} {value} is negative")
    tw, th = (max(0, v) for v in size) if size else (0, 0)
    return level, tx, ty, tw, th


def tile_region(tile: tuple[int, int, int, int, int], info: ImageInfo) -> tuple[Rect, int]:
    """The full-resolution region a ``tile=`` covers on ``info``'s image, and its output side.

    The second value is the tile's longest side in pixels of its level (the size OMERO.web
    sends it at).

    >>> from minerva_dask.sources.base import ChannelInfo, ImageInfo, LevelInfo
    >>> info = ImageInfo(name="x", dtype="uint8", size_c=1, size_z=1, size_t=1,
    ...     channels=(ChannelInfo(0, "c", (1, 1, 1), (0, 255)),),
    ...     levels=(LevelInfo(1000, 600, 256, 256), LevelInfo(500, 300, 256, 256, (2, 2))))
    >>> tile_region((1, 1, 1, 0, 0), info)
    (Rect(x=512.0, y=512.0, width=488.0, height=88.0), 244)
    """
    level, tx, ty, tw, th = tile
    if level >= len(info.levels):
        raise RequestError(
            f"tile level {level} does not exist: the image has {len(info.levels)} level"
            f"{'s' if len(info.levels) != 1 else ''} (0 = full resolution)"
        )
    spec = info.levels[level]
    tw = min(tw or spec.tile_width, MAX_TILE_LENGTH)
    th = min(th or spec.tile_height, MAX_TILE_LENGTH)
    x, y = tx * tw, ty * th
    if x >= spec.width or y >= spec.height:
        raise RequestError(
            f"tile {level},{tx},{ty} ({tw} x {th}) starts at {x},{y}, outside level {level} "
            f"({spec.width} x {spec.height})"
        )
    width, height = min(tw, spec.width - x), min(th, spec.height - y)
    fx, fy = (float(f) for f in spec.downsample)
    region = Rect(x * fx, y * fy, width * fx, height * fy)
    return region, max(width, height)


def native_max_size(region: Rect, limit: int) -> int:
    """The longest side of ``region`` in whole pixels, at most ``limit``: the output size of
    a full-resolution ``render_image_region``."""
    return max(1, min(limit, math.ceil(max(region.width, region.height))))
