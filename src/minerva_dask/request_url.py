"""Making requests: the OMERO.figure / OMERO.web URL parser (text to a
:class:`RenderRequest`), and a request from an image's own channel settings.

The grammar is that of ``rendering.md`` section 1 and ``api-contract.md`` 1.3; the URL
forms (``figure/render_scaled_region``, ``webgateway``/``webclient`` ``render_image`` and
``render_image_region``) are told apart in :mod:`minerva_dask._omero_urls`. Anything
malformed is a :class:`RequestError` naming the offending part.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from ._omero_urls import native_max_size, parse_tile, split_endpoint
from .colors import parse_color
from .errors import RequestError
from .geometry import Rect
from .projection import parse_projection
from .request import (
    _FORMS,
    _KNOWN_PARAMS,
    DEFAULT_MAX_SIZE,
    MAX_SIDE,
    ChannelSetting,
    RenderRequest,
)

if TYPE_CHECKING:
    from .sources.base import ImageInfo

__all__ = ["default_request", "parse_request"]

logger = logging.getLogger(__name__)


def _parse_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise RequestError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise RequestError(f"{what}: {text!r} is not a finite number")
    return value


def _parse_channel_entry(entry: str) -> ChannelSetting:
    """One ``c`` entry: ``[-]index[|start:end][$colour]`` (also ``index$colour``)."""
    where = f"c entry {entry!r}"
    if not entry:
        raise RequestError("c has an empty entry (two commas in a row, or a trailing comma)")
    head, _, detail = entry.partition("|")
    if "|" not in entry and "$" in head:
        head, _, colour = head.partition("$")
        detail = "$" + colour
    active = not head.startswith("-")
    digits = head[1:] if not active else head
    if not digits.isdigit():
        raise RequestError(f"{where}: channel index {head!r} is not a 1-based integer")
    index = int(digits)
    if index < 1:
        raise RequestError(f"{where}: channel index must be >= 1 (c is 1-based)")
    window_text, has_colour, colour_text = detail.partition("$")
    window = None
    if window_text:
        start_text, colon, end_text = window_text.partition(":")
        if not colon:
            raise RequestError(f"{where}: window {window_text!r} is not start:end")
        window = (
            _parse_float(start_text, f"{where}: window start"),
            _parse_float(end_text, f"{where}: window end"),
        )
    color, lut, alpha = None, None, 1.0
    if has_colour:
        if colour_text.lower().endswith(".lut"):
            lut = colour_text
        else:
            try:
                color, alpha = parse_color(colour_text)
            except RequestError as exc:
                raise RequestError(f"{where}: {exc}") from None
    try:
        return ChannelSetting(
            index=index - 1, window=window, color=color, alpha=alpha, lut=lut, active=active
        )
    except RequestError as exc:
        raise RequestError(f"{where}: {exc}") from None


def _parse_maps(text: str, channels: list[ChannelSetting]) -> list[ChannelSetting]:
    try:
        maps = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"maps is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise RequestError("maps is nested too deeply to be a list of channel maps") from None
    if not isinstance(maps, list):
        raise RequestError("maps must be a JSON list with one object per c entry")
    if len(maps) != len(channels):
        raise RequestError(f"maps has {len(maps)} entries but c has {len(channels)}")
    out = []
    for i, (item, channel) in enumerate(zip(maps, channels, strict=True)):
        if item is None:
            out.append(channel)
            continue
        if not isinstance(item, dict):
            raise RequestError(f"maps[{i}] must be an object, got {item!r}")
        changes: dict[str, Any] = {}
        for key in ("inverted", "reverse"):
            if key in item:
                flag = item[key]
                enabled = flag.get("enabled") if isinstance(flag, dict) else None
                if not isinstance(enabled, bool):
                    raise RequestError(f'maps[{i}].{key} must be {{"enabled": true|false}}')
                changes["inverted"] = enabled
        if "quantization" in item:
            quant = item["quantization"]
            if not isinstance(quant, dict):
                raise RequestError(f"maps[{i}].quantization must be an object")
            changes["family"] = quant.get("family", "linear")
            coefficient = quant.get("coefficient", 1.0)
            if isinstance(coefficient, bool) or not isinstance(coefficient, int | float):
                raise RequestError(f"maps[{i}].quantization.coefficient must be a number")
            changes["coefficient"] = float(coefficient)
        try:
            out.append(replace(channel, **changes))
        except RequestError as exc:
            raise RequestError(f"maps[{i}]: {exc}") from None
    return out


def _parse_path(path: str, kind: str | None) -> tuple[str | None, int, int]:
    parts = [p for p in path.split("/") if p]
    if not parts and kind is None:
        return None, 0, 0
    if kind == "render_image" and len(parts) in (1, 2):
        raise RequestError(
            f"render_image path {path!r} has no z and t: OMERO.web would take the image's "
            "saved default plane; add them as /{image_id}/{z}/{t}/"
        )
    if len(parts) != 3:
        raise RequestError(
            f"path {path!r} must be /{{image_id}}/{{z}}/{{t}}/ (three parts), found {len(parts)}"
        )
    image_id, z_text, t_text = parts
    if not image_id.isdigit() and not re.fullmatch(r"[0-9a-fA-F-]{8,}", image_id):
        raise RequestError(f"image id {image_id!r} in the path is not a number or uuid")
    for name, text in (("z", z_text), ("t", t_text)):
        if not text.isdigit():
            raise RequestError(f"{name} {text!r} in the path is not an integer >= 0")
    return image_id, int(z_text), int(t_text)


def _parse_area(params: dict[str, str], kind: str | None) -> tuple[Rect | None, Any]:
    """``region`` or ``tile`` of the query, as the endpoint ``kind`` wants them."""
    if kind == "render_image":
        for key in ("region", "tile"):
            if key in params:
                raise RequestError(
                    f"render_image renders the whole plane and takes no {key}: use "
                    "render_image_region or render_scaled_region for a part"
                )
        return None, None
    if "tile" in params:
        if kind == "render_scaled_region":
            raise RequestError("render_scaled_region takes region=x,y,w,h, not tile")
        if "region" in params:
            raise RequestError("give tile or region, not both")
        return None, parse_tile(params["tile"])
    if "region" not in params:
        raise RequestError(
            "missing region=x,y,width,height (full-resolution pixels)"
            + (" or tile=level,tx,ty" if kind != "render_scaled_region" else "")
        )
    values = params["region"].split(",")
    if len(values) != 4:
        raise RequestError(f"region {params['region']!r} must be four numbers x,y,width,height")
    return Rect(*(_parse_float(v, f"region {params['region']!r}") for v in values)), None


def parse_request(url: str) -> RenderRequest:
    """Parse an OMERO.figure or OMERO.web render URL into a :class:`RenderRequest`.

    Accepts a full URL (host, any deployment prefix, then ``figure/render_scaled_region``,
    ``webgateway/render_image_region``, ``webgateway/render_image`` or their ``webclient``
    copies), the same without the host, the bare path ``/{image_id}/{z}/{t}/?...`` or just
    the query ``?c=...&region=...``. Raises :class:`RequestError` naming the malformed part.
    ``region`` (or ``tile``) is required, as in OMERO, except by ``render_image``, which
    renders the whole image; :mod:`minerva_dask._omero_urls` says what each form means.

    >>> req = parse_request("/1/0/0/?c=1|300:12000$0000FF,-2|0:65535$00FF00&region=0,0,512,256")
    >>> [(c.index, c.window, c.active) for c in req.channels]
    [(0, (300.0, 12000.0), True), (1, (0.0, 65535.0), False)]
    >>> req.region, req.max_size
    (Rect(x=0.0, y=0.0, width=512.0, height=256.0), 2000)
    """
    if not isinstance(url, str):
        raise RequestError(
            f"a request is a URL string or a RenderRequest, not a {type(url).__name__}: "
            "expected /{image_id}/{z}/{t}/?c=...&region=..."
        )
    if not url.strip():
        raise RequestError("the request is empty: expected /{image_id}/{z}/{t}/?c=...&region=...")
    text = url.strip()
    parts = urlsplit(text)
    server = None
    path = parts.path
    root, kind, path = split_endpoint(path)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RequestError(f"URL scheme {parts.scheme!r} is not http or https")
        if kind is None:
            raise RequestError(
                f"URL path {parts.path!r} does not contain a render endpoint ({_FORMS}): "
                "copy the URL of an OMERO.figure or OMERO.web rendered image"
            )
        server = f"{parts.scheme}://{parts.netloc}{root}"
    image_id, z, t = _parse_path(path, kind)
    if parts.fragment:
        raise RequestError(f"unexpected fragment #{parts.fragment} in the request")
    if not parts.query:
        raise RequestError("the request has no query: expected ?c=...&region=x,y,w,h")
    params: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in params:
            raise RequestError(f"query parameter {key!r} is given twice")
        if key not in _KNOWN_PARAMS:
            raise RequestError(
                f"unknown query parameter {key!r} (known: {', '.join(sorted(_KNOWN_PARAMS))})"
            )
        params[key] = value
    if "c" not in params or not params["c"]:
        raise RequestError("missing c: list the channels, e.g. c=1|0:65535$FF0000")
    channels = [_parse_channel_entry(entry) for entry in params["c"].split(",")]
    if "maps" in params:
        channels = _parse_maps(params["maps"], channels)
    region, tile = _parse_area(params, kind)
    projection = parse_projection(params.get("p", "normal"))
    max_size = DEFAULT_MAX_SIZE
    if kind == "render_image_region" and region is not None:  # OMERO.web: full resolution
        max_size = native_max_size(region, MAX_SIDE)
    if "max_size" in params:
        text = params["max_size"]
        if not (text.isascii() and text.isdigit()) or not text.strip("0"):
            raise RequestError(f"max_size {text!r} is not an integer >= 1")
        if len(text.lstrip("0")) > len(str(MAX_SIDE)):
            shown = text if len(text) <= 20 else text[:20] + "..."
            raise RequestError(f"max_size {shown} is not within 1..{MAX_SIDE} (2^31 - 1)")
        max_size = int(text)
    model = {"c": "color", "g": "greyscale", None: "color"}.get(params.get("m"))
    if model is None:
        raise RequestError(f"m {params['m']!r} is not c (colour) or g (greyscale)")
    quality = _parse_float(params["q"], "q (JPEG quality)") if "q" in params else None
    return RenderRequest(
        channels=tuple(channels),
        region=region,
        tile=tile,
        max_size=max_size,
        z=z,
        t=t,
        image_id=image_id,
        model=model,
        quality=quality,
        server=server,
        projection=projection,
    )


def _channel_list(indices: Sequence[int]) -> str:
    """1-based, runs joined: ``[0, 1, 2, 3]`` -> ``1-4``; ``[0, 2, 3]`` -> ``1, 3-4``."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return ", ".join(f"{r[0] + 1}-{r[-1] + 1}" if len(r) > 1 else f"{r[0] + 1}" for r in runs)


def default_request(
    info: ImageInfo, channels: Iterable[int] | None = None, **kwargs: Any
) -> RenderRequest:
    """A request showing ``channels`` (default: the image's first up to 4 active ones)
    with the image's own windows and colours, over the whole image (region given
    explicitly, so that :meth:`RenderRequest.to_url` can write it).

    Keyword arguments are passed to :class:`RenderRequest` (``region``, ``max_size``...).
    When the default leaves channels out, one INFO line says which are shown.

    >>> import minerva_dask as md
    >>> md.default_request(md.open_image(md.demo_image_path()).info, channels=[0]).to_url()
    '?c=1|0:65535$0000FF&region=0,0,4096,3072'
    """
    if channels is None:
        picked: Sequence[int] = [c.index for c in info.channels if c.active][:4] or [0]
        if len(picked) < info.size_c:
            logger.info(
                "showing channels %s of %d; list others with c=... in the request "
                "(e.g. c=5|0:65535$FF0000; Python: default_request(info, channels=[4]))",
                _channel_list(picked),
                info.size_c,
            )
    else:
        picked = list(channels)
    settings = tuple(
        ChannelSetting(index=i, window=info.channels[i].window, color=info.channels[i].color)
        for i in picked
    )
    kwargs.setdefault("region", Rect(0, 0, info.width, info.height))  # explicit: URL-able
    return RenderRequest(channels=settings, **kwargs)
