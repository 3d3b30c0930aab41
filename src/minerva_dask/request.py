"""Render requests: the model, and the parser for the URLs OMERO.figure and OMERO.web emit.

A :class:`RenderRequest` says what to draw: which channels (with window, colour,
inversion), which region of the full-resolution image, how large at most, and which focal
plane ``z`` and time point ``t``. It says nothing about the image's data; it is checked
against an image with :meth:`RenderRequest.resolve`.

The URL grammar is that of ``rendering.md`` section 1 and ``api-contract.md`` 1.3::

    [https://host[/prefix]/figure/render_scaled_region]/{image_id}/{z}/{t}/?c=...&region=x,y,w,h
        [&max_size=N][&m=c|g][&maps=[...]][&q=0.9][&p=...]

and also OMERO.web's ``render_image`` (the whole plane) and ``render_image_region``
(``region=`` at full resolution, or ``tile=level,tx,ty[,tw,th]``), under ``webgateway/`` or
``webclient/``; :mod:`minerva_dask._omero_urls` says what each form means.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from ._omero_urls import tile_region
from .colors import color_hex, parse_color
from .errors import RequestError
from .geometry import Rect
from .projection import Projection

if TYPE_CHECKING:
    from .sources.base import ImageInfo

__all__ = ["ChannelSetting", "RenderRequest", "ResolvedChannel", "parse_color"]

DEFAULT_MAX_SIZE = 2000
# Largest output side (PNG's and TIFF's limit) and largest |coordinate| of a region:
# beyond 1e15 a float64 no longer holds every pixel position and its fraction.
MAX_SIDE = 2**31 - 1
MAX_COORDINATE = 1e15
FAMILIES = ("linear", "polynomial", "exponential", "logarithmic")
_FIGURE_MARKER = "/figure/render_scaled_region/"
_RENDER_IMAGE = "/webgateway/render_image"
_FORMS = "figure/render_scaled_region, webgateway|webclient/render_image[_region]"
_IGNORED_PARAMS = frozenset({"ia", "format", "zm", "_", "callback"})
_KNOWN_PARAMS = (
    frozenset({"c", "region", "tile", "max_size", "m", "maps", "q", "p"}) | _IGNORED_PARAMS
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelSetting:
    """How to draw one channel.

    Parameters
    ----------
    index
        0-based channel index in the image (the URL's ``c`` is 1-based).
    window
        ``(start, end)`` in raw pixel values of the image's dtype; ``None`` takes the image's
        own default window (OME metadata, else the dtype's range).
    color
        RGB triple in 0..1, or a hex string (``"FF0000"``, ``"F00"``, ``"FF000080"``);
        ``None`` takes the image's default colour for that channel.
    alpha
        Colour alpha in 0..1 (from 4/8-digit colours); scales the colour as OMERO does.
    lut
        Name of an OMERO lookup table (``"cool.lut"``) instead of a colour. Only the OMERO
        server can render these.
    active
        ``False`` for a channel listed but hidden (``-`` in the URL): it is not rendered.
    inverted
        Draw ``1 - n`` instead of ``n`` (OMERO's reverse intensity).
    family, coefficient
        OMERO quantization family and its coefficient (used by the ``omero`` preset).
    """

    index: int
    window: tuple[float, float] | None = None
    color: tuple[float, float, float] | str | None = None
    alpha: float = 1.0
    lut: str | None = None
    active: bool = True
    inverted: bool = False
    family: str = "linear"
    coefficient: float = 1.0

    def __post_init__(self) -> None:
        if isinstance(self.index, bool) or not isinstance(self.index, int) or self.index < 0:
            raise RequestError(f"channel index must be an integer >= 0, got {self.index!r}")
        if self.window is not None:
            start, end = (float(v) for v in self.window)
            if not (math.isfinite(start) and math.isfinite(end)):
                raise RequestError(f"channel {self.index + 1}: window {self.window} is not finite")
            if start > end:
                raise RequestError(
                    f"channel {self.index + 1}: window start {start:g} is greater than end {end:g}"
                )
            object.__setattr__(self, "window", (start, end))
        if isinstance(self.color, str):
            rgb, alpha = parse_color(self.color)
            object.__setattr__(self, "color", rgb)
            if alpha != 1.0:
                object.__setattr__(self, "alpha", alpha)
        elif self.color is not None:
            rgb = tuple(float(v) for v in self.color)
            if len(rgb) != 3 or not all(0.0 <= v <= 1.0 for v in rgb):
                raise RequestError(
                    f"channel {self.index + 1}: colour {self.color} is not RGB in 0..1"
                )
            object.__setattr__(self, "color", rgb)
        if not 0.0 <= self.alpha <= 1.0:
            raise RequestError(f"channel {self.index + 1}: alpha {self.alpha!r} is not within 0..1")
        if self.alpha != 1.0 and self.color is None:
            raise RequestError(f"channel {self.index + 1}: an alpha needs a colour")
        if self.family not in FAMILIES:
            raise RequestError(
                f"channel {self.index + 1}: quantization family {self.family!r} is not one of "
                f"{', '.join(FAMILIES)}"
            )
        if not (math.isfinite(self.coefficient) and self.coefficient > 0):
            raise RequestError(
                f"channel {self.index + 1}: quantization coefficient "
                f"{self.coefficient!r} must be > 0"
            )


@dataclass(frozen=True, slots=True)
class ResolvedChannel:
    """A shown channel with every default filled in from the image: ready for the kernel.

    ``start``/``end`` are raw pixel values, ``color`` is RGB in 0..1 and ``alpha`` the
    colour's opacity in 0..1 (the kernel scales the colour by it, as OMERO does).
    """

    index: int
    start: float
    end: float
    color: tuple[float, float, float]
    inverted: bool = False
    family: str = "linear"
    coefficient: float = 1.0
    alpha: float = 1.0
    lut: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderRequest:
    """What to render: channels, region, size limit, plane.

    Parameters
    ----------
    channels
        One :class:`ChannelSetting` per listed channel; hidden ones have ``active=False``.
        Kept sorted by channel index.
    region
        ``(x, y, width, height)`` in full-resolution pixels (floats allowed); it may start at
        negative coordinates and extend past the image. ``None`` means the whole image.
    tile
        Instead of ``region``: OMERO.web's ``tile=`` as ``(level, tx, ty, tw, th)``
        (``tw``/``th`` 0: the level's tile size). It becomes a region, and ``max_size`` at
        most the tile's side, when the request meets the image (:meth:`for_image`).
    max_size
        Largest output side wanted, in output pixels (the level choice never upsamples).
    z, t
        0-based focal plane and time point.
    image_id
        The image id from the URL path, if any (an OMERO id; a placeholder for files).
    model
        ``"color"`` (additive composite) or ``"greyscale"`` (first shown channel, grey).
    quality
        JPEG quality in (0, 1] asked of an OMERO server (``q``), if given; the CLI asks the
        server for it unless ``--jpeg-quality`` says otherwise.
    server
        Base URL of the OMERO.web server when the request was a full URL.
    projection
        A z projection (``p=intmax|0:4``, :mod:`minerva_dask.projection`), or ``None``
        for the plane ``z``.
    """

    channels: tuple[ChannelSetting, ...] = ()
    region: Rect | None = None
    tile: tuple[int, int, int, int, int] | None = None
    max_size: int = DEFAULT_MAX_SIZE
    z: int = 0
    t: int = 0
    image_id: str | None = None
    model: str = "color"
    quality: float | None = None
    server: str | None = field(default=None, compare=False)
    projection: Projection | None = None

    def __post_init__(self) -> None:
        channels = tuple(self.channels)
        for channel in channels:
            if not isinstance(channel, ChannelSetting):
                raise RequestError(f"channels must be ChannelSetting objects, got {channel!r}")
        # Canonical order: ascending channel index, as OMERO pairs windows with channels.
        channels = tuple(sorted(channels, key=lambda c: c.index))
        object.__setattr__(self, "channels", channels)
        seen: set[int] = set()
        for channel in channels:
            if channel.index in seen:
                raise RequestError(f"channel {channel.index + 1} is listed twice in c")
            seen.add(channel.index)
        if self.region is not None and not isinstance(self.region, Rect):
            object.__setattr__(self, "region", Rect(*self.region))
        if self.region is not None:
            values = (self.region.x, self.region.y, self.region.width, self.region.height)
            if not all(math.isfinite(v) for v in values):
                raise RequestError(f"region {values} is not finite")
            if self.region.width <= 0 or self.region.height <= 0:
                raise RequestError(
                    f"region width and height must be > 0, got {self.region.width:g} x "
                    f"{self.region.height:g}"
                )
            if max(abs(v) for v in values) > MAX_COORDINATE:
                raise RequestError(
                    f"region {','.join(f'{v:g}' for v in values)} is beyond "
                    f"{MAX_COORDINATE:g} pixels, where pixel positions lose float precision"
                )
        if (
            isinstance(self.max_size, bool)
            or not isinstance(self.max_size, int)
            or not 1 <= self.max_size <= MAX_SIDE
        ):
            raise RequestError(
                f"max_size must be an integer within 1..{MAX_SIDE} (2^31 - 1), got "
                f"{self.max_size!r}"
            )
        for name in ("z", "t"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RequestError(f"{name} must be an integer >= 0, got {value!r}")
        if self.model not in ("color", "greyscale"):
            raise RequestError(f"model must be 'color' or 'greyscale', got {self.model!r}")
        if self.quality is not None and not 0 < self.quality <= 1:
            raise RequestError(f"q (JPEG quality) must be within (0, 1], got {self.quality!r}")
        if self.tile is not None:
            tile = tuple(self.tile)
            if len(tile) != 5 or not all(
                isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in tile
            ):
                raise RequestError(
                    f"tile must be five integers >= 0 (level, tx, ty, tw, th), got {self.tile!r}"
                )
            if self.region is not None:
                raise RequestError("give tile or region, not both")
            object.__setattr__(self, "tile", tile)

    @property
    def shown(self) -> tuple[ChannelSetting, ...]:
        """The active channels in ascending channel order (greyscale: only the first)."""
        shown = tuple(c for c in self.channels if c.active)
        return shown[:1] if self.model == "greyscale" else shown

    def with_channel(self, index: int, **changes: Any) -> RenderRequest:
        """A copy with channel ``index`` (0-based) changed, or added when not listed.

        >>> from minerva_dask import parse_request
        >>> req = parse_request("?c=1|0:100$FF0000&region=0,0,10,10")
        >>> req.with_channel(0, window=(5, 50)).channels[0].window
        (5.0, 50.0)
        """
        channels = list(self.channels)
        for i, channel in enumerate(channels):
            if channel.index == index:
                channels[i] = replace(channel, **changes)
                break
        else:
            channels.append(ChannelSetting(index=index, **changes))
        return replace(self, channels=tuple(channels))

    def for_image(self, info: ImageInfo) -> RenderRequest:
        """This request with a ``tile`` turned into the full-resolution region it covers on
        ``info``'s image, and ``max_size`` at most the tile's side (its output is the tile at
        its level's resolution, as OMERO.web sends it). Other requests come back unchanged.

        >>> from minerva_dask.sources.base import ChannelInfo, ImageInfo, LevelInfo
        >>> info = ImageInfo(name="x", dtype="uint8", size_c=1, size_z=1, size_t=1,
        ...     channels=(ChannelInfo(0, "c", (1, 1, 1), (0, 255)),),
        ...     levels=(LevelInfo(1024, 1024, 256, 256), LevelInfo(512, 512, 256, 256, (2, 2))))
        >>> from minerva_dask import parse_request
        >>> req = parse_request("/webgateway/render_image_region/1/0/0/?c=1&tile=1,1,0")
        >>> req.for_image(info).region, req.for_image(info).max_size
        (Rect(x=512.0, y=0.0, width=512.0, height=512.0), 256)
        """
        if self.tile is None:
            return self
        region, side = tile_region(self.tile, info)
        return replace(self, tile=None, region=region, max_size=min(self.max_size, side))

    def resolve(self, info: ImageInfo) -> tuple[ResolvedChannel, ...]:
        """Check this request against an image and fill in defaults from it.

        Raises :class:`RequestError` naming the offending part: a channel index beyond the
        image, ``z``/``t`` out of range, nothing shown, a LUT colour. Returns the shown
        channels with concrete windows and colours.
        """
        if self.z >= info.size_z:
            raise RequestError(f"z={self.z} is out of range: the image has {info.size_z} z-planes")
        if self.projection is not None:
            self.projection.planes(info.size_z)  # the range is checked against the image
        if self.t >= info.size_t:
            raise RequestError(
                f"t={self.t} is out of range: the image has {info.size_t} time points"
            )
        for channel in self.channels:
            if channel.index >= info.size_c:
                raise RequestError(
                    f"channel {channel.index + 1} in c is beyond the image's {info.size_c} "
                    f"channel{'s' if info.size_c != 1 else ''} (c is 1-based)"
                )
        shown = self.shown
        if not shown:
            raise RequestError("no channel is shown: list at least one channel without '-' in c")
        resolved = []
        for channel in shown:
            default = info.channels[channel.index]
            start, end = channel.window if channel.window is not None else default.window
            color = channel.color if channel.color is not None else default.color
            if self.model == "greyscale":
                color = (1.0, 1.0, 1.0)
            alpha = channel.alpha
            resolved.append(
                ResolvedChannel(
                    index=channel.index,
                    start=float(start),
                    end=float(end),
                    color=tuple(color),  # type: ignore[arg-type]
                    inverted=channel.inverted,
                    family=channel.family,
                    coefficient=channel.coefficient,
                    alpha=alpha,
                    lut=channel.lut,
                )
            )
        return tuple(resolved)

    def to_url(self) -> str:
        """This request as an OMERO.figure ``render_scaled_region`` URL (path and query);
        one for the whole image (no ``region`` or ``tile``) as a ``webgateway/render_image``
        URL (image id ``0`` when it has none).

        Channels are emitted sorted by index, as OMERO pairs windows with channels in
        ascending order. The server part is included when the request carries one.

        >>> from minerva_dask import parse_request
        >>> parse_request("/5/0/0/?c=2|0:9$00FF00,-1&region=0,0,10,10&max_size=64").to_url()
        '/5/0/0/?c=-1,2|0:9$00FF00&region=0,0,10,10&max_size=64'
        """
        entries, maps = [], []
        for channel in self.channels:
            entry = ("" if channel.active else "-") + str(channel.index + 1)
            detail = ""
            if channel.window is not None:
                detail += f"{_num(channel.window[0])}:{_num(channel.window[1])}"
            if channel.lut is not None:
                detail += "$" + channel.lut
            elif channel.color is not None:
                alpha = "" if channel.alpha == 1.0 else f"{round(channel.alpha * 255):02X}"
                detail += "$" + color_hex(channel.color) + alpha  # type: ignore[arg-type]
            entries.append(entry + ("|" + detail if detail else ""))
            item: dict[str, Any] = {}
            if channel.inverted:
                item["inverted"] = {"enabled": True}
            if channel.family != "linear" or channel.coefficient != 1.0:
                item["quantization"] = {
                    "family": channel.family,
                    "coefficient": channel.coefficient,
                }
            maps.append(item)
        query = [("c", ",".join(entries))]
        if self.region is not None:
            r = self.region
            query.append(("region", ",".join(_num(v) for v in (r.x, r.y, r.width, r.height))))
        if self.tile is not None:
            query.append(("tile", ",".join(str(v) for v in self.tile)))
        if self.max_size != DEFAULT_MAX_SIZE:
            query.append(("max_size", str(self.max_size)))
        if self.model == "greyscale":
            query.append(("m", "g"))
        if any(maps):
            query.append(("maps", json.dumps(maps, separators=(",", ":"))))
        if self.quality is not None:
            query.append(("q", _num(self.quality)))
        if self.projection is not None:
            query.append(("p", self.projection.to_param()))
        safe = "|$:,-.[]{}\"'"
        text = "&".join(f"{k}={quote(v, safe=safe)}" for k, v in query)
        whole = self.region is None and self.tile is None  # OMERO.web's render_image
        unnamed = self.image_id is None and self.z == 0 and self.t == 0 and not self.server
        if unnamed and not whole:
            return f"?{text}"  # no image named: the query alone parses back the same
        image = self.image_id if self.image_id is not None else "0"
        path = f"/{image}/{self.z}/{self.t}/?{text}"
        if whole:
            path = _RENDER_IMAGE + path
        server = ""
        if self.server:  # never with user:password@: a URL to share, not a credential
            server = urlunsplit(urlsplit(self.server)._replace(netloc=_host(self.server)))
            server = server.rstrip("/") + ("" if whole else _FIGURE_MARKER.rstrip("/"))
        return server + path


def _host(url: str) -> str:
    """The network location of ``url`` without user info."""
    return urlsplit(url).netloc.rsplit("@", 1)[-1]


def _num(value: float) -> str:
    """Shortest text that parses back to the same float (ints without a decimal point)."""
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)
