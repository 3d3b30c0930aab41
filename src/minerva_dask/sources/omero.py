"""OMERO.web webgateway as a tile source (``api-contract.md`` sections 1, 2, 5).

OMERO serves rendered 8-bit tiles only, never raw pixels, so this source offers two tile
modes instead of ``read_region``:

``composite`` (default)
    One ``render_image_region`` request per tile with every shown channel (``m=c``):
    exactly OMERO's colours, at high JPEG quality (or lossless PNG where the server is
    the omero-ms-image-region micro-service).
``windowed``
    One grey request per channel per tile with the window applied by the server
    (``m=g``, ``c=k|start:end$FFFFFF``): 8-bit quanta that our kernel colours and adds,
    so gamma, presets and inversion are ours.

Every tile is checked before use (``_tiles.decode_tile``): its size, 8-bit pixels, and
its colour mode. A composite tile must be RGB: a grey one is a wrong answer. A windowed
tile may be grey, or RGB whose bands agree (OMERO sends grey renderings as RGB JPEGs);
bands that disagree are a colour tile where grey was asked. A refused tile is retried as
a bad body, then fails the read naming image, level and tile.

Authentication: an OMERO session key (``bsession``), a JSON-API login with username and
password, a raw browser cookie (``OME_COOKIE``), or nothing for public servers; from
arguments, the environment (``OMERO_SESSION``, ``OMERO_USERNAME``/``OMERO_PASSWORD``,
``OME_COOKIE``) or the config file. An expired session (302 to the login page, or 403)
is renewed once. Credentials are pickled with the source, so dask workers can reconnect,
but never appear in its repr, in logs or in messages.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import numpy as np
import requests

from .._config import setting
from .._redact import register_secret, register_url_secrets
from ..colors import color_hex
from ..errors import AuthError, RemoteError, SourceError, SourceNotFoundError, TileReadError
from ..geometry import Rect, tile_pieces
from ._http import RetryPolicy, redact
from ._omero_imgdata import MAX_TILE_SIDE, info_from_imgdata
from ._omero_session import OmeroConnection, secrets_digest
from ._tiles import PNG_START, decode_tile
from .base import CachedHandleSource, ImageInfo

__all__ = ["OmeroSource", "info_from_imgdata"]

logger = logging.getLogger(__name__)
TILE_MODES = ("composite", "windowed")


def _quantization(style: Any) -> dict[str, Any]:
    """The ``maps`` entry part for a non-default quantization family, else nothing."""
    if style.family == "linear" and style.coefficient == 1.0:
        return {}
    return {"quantization": {"family": style.family, "coefficient": style.coefficient}}


def _num(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class OmeroSource(CachedHandleSource):
    """One image on an OMERO.web server.

    Parameters
    ----------
    server
        Base URL of OMERO.web, e.g. ``https://omero.example.org`` (with any prefix such as
        ``/omero``).
    image_id
        The OMERO image id.
    mode
        ``"composite"`` (default: OMERO renders each tile, exact OMERO colours) or
        ``"windowed"`` (grey tiles per channel, composited by our kernel).
    session_key, username, password, cookie
        Credentials; default from ``OMERO_SESSION``, ``OMERO_USERNAME``/``OMERO_PASSWORD``,
        ``OME_COOKIE`` or the config file's ``[omero]`` section. None: anonymous.
    verify
        TLS certificate verification (on by default; turn off only for this source).
    quality
        JPEG quality 0..1 asked of the server.
    image_format
        ``"auto"`` (PNG where the server honours ``format=png``, else JPEG), ``"jpeg"`` or
        ``"png"``.
    tile_size
        Side of the tiles requested, in level pixels (at most 1024).
    max_retries, initial_delay_s, timeout_s, deadline_s
        Retry policy of each request: exponential backoff with jitter, seconds allowed
        for each socket read and for the whole request (a server trickling bytes is cut
        off at the deadline and the request tried again).
    concurrency
        Tiles in flight at once on the threaded scheduler (latency hiding).
    """

    schemes = ("http", "https")
    server_preset = "omero"  # what the composite tiles are
    reads_windowed = True  # windowed 8-bit tiles in either mode

    def __init__(
        self,
        server: str,
        image_id: int | str,
        *,
        mode: str = "composite",
        session_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        cookie: str | None = None,
        verify: bool = True,
        quality: float = 0.95,
        image_format: str = "auto",
        tile_size: int = MAX_TILE_SIDE,
        max_retries: int = 5,
        initial_delay_s: float = 0.25,
        timeout_s: float = 30.0,
        deadline_s: float = 120.0,
        concurrency: int = 16,
    ) -> None:
        if mode not in TILE_MODES:
            raise SourceError(f"OMERO mode must be one of {TILE_MODES}, got {mode!r}")
        if image_format not in ("auto", "jpeg", "png"):
            raise SourceError(f"image_format must be auto, jpeg or png, got {image_format!r}")
        if not 0 < quality <= 1:
            raise SourceError(f"JPEG quality must be within (0, 1], got {quality}")
        register_url_secrets(server)
        parts = urlsplit(server)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise SourceError(f"OMERO server {redact(server)!r} is not an http(s) URL")
        if parts.username is not None:  # https://user:password@host: the OMERO login
            username = username or unquote(parts.username)
            password = password or unquote(parts.password or "") or None
            parts = parts._replace(netloc=parts.netloc.rsplit("@", 1)[1])
        self.server = urlunsplit(parts).rstrip("/")
        self.image_id = int(image_id)
        self.tile_mode = mode
        self.quality = quality
        self.tile_side = max(1, min(int(tile_size), MAX_TILE_SIDE))
        self.io_concurrency = concurrency
        credentials = {
            "session": session_key or setting("omero", "session", "OMERO_SESSION"),
            "username": username or setting("omero", "username", "OMERO_USERNAME"),
            "password": password or setting("omero", "password", "OMERO_PASSWORD"),
            "cookie": cookie or setting("omero", "cookie", "OME_COOKIE"),
        }
        _register_secrets(credentials, server)
        self._config = {
            "server": self.server,
            "credentials": credentials,
            "verify": verify,
            "policy": RetryPolicy(
                max_retries, initial_delay_s, timeout_s=timeout_s, deadline_s=deadline_s
            ),
            "pool_size": max(concurrency, 4),
        }
        self.image_format = image_format
        self._info: ImageInfo | None = None
        # fixed now: storing the login's session key below must not open a second connection
        self._key = ("omero", self.server, verify, secrets_digest(credentials))
        if not verify:
            logger.warning("TLS certificate verification is off for %s", redact(self.server))
        self._load_info()
        if image_format == "auto":
            self.image_format = "png" if self._server_sends_png() else "jpeg"
        # workers join the session made here instead of logging in again
        credentials["session"] = self._connection().session_key or credentials["session"]

    # -- identity, pickling, handles --------------------------------------------------
    def __reduce__(self) -> tuple[Any, ...]:
        state = {k: v for k, v in self.__dict__.items()}
        return (_rebuild, (state,))

    def __repr__(self) -> str:
        server = redact(self.server)
        return f"OmeroSource({server!r}, image_id={self.image_id}, mode={self.tile_mode!r})"

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (
            "omero",
            self.server,
            self.image_id,
            self.tile_mode,
            self.quality,
            self.image_format,
            self.tile_side,
        )

    def _handle_key(self) -> tuple[Any, ...]:
        return self._key

    def _open_handle(self) -> OmeroConnection:
        return OmeroConnection(self._config)

    def _connection(self) -> OmeroConnection:
        return self._handle()

    # -- metadata ---------------------------------------------------------------------
    def _load_info(self) -> None:
        policy: RetryPolicy = self._config["policy"]
        path = f"webgateway/imgData/{self.image_id}/"
        what = f"metadata of OMERO image {self.image_id}"
        for attempt in range(policy.max_retries + 1):
            try:
                data = self._connection().get(path, {}, what=what, validate=_json_body)
            except RemoteError as exc:
                if exc.status == 404:
                    raise SourceNotFoundError(
                        f"OMERO image {self.image_id} not found at {self.server} (or no "
                        "permission to see it)"
                    ) from None
                raise
            busy = data.get("ConcurrencyException")
            if busy is None:
                break
            back_off_s = max(float(busy.get("backOff", 1000)) / 1000, policy.initial_delay_s)
            if attempt == policy.max_retries:
                raise RemoteError(
                    f"OMERO is still generating the pyramid of image {self.image_id} at "
                    f"{self.server} after {attempt + 1} tries; try again later"
                )
            logger.info(
                "OMERO is building the pyramid of image %s; waiting %.1f s",
                self.image_id,
                back_off_s,
            )
            time.sleep(back_off_s)
        if "Exception" in data:
            raise RemoteError(f"OMERO could not open image {self.image_id}: {data['Exception']}")
        self._info = info_from_imgdata(data, self.tile_side)

    def _server_sends_png(self) -> bool:
        """Whether the server honours ``format=png`` (omero-ms-image-region does)."""
        last = len(self.info.levels) - 1
        params = {"tile": f"{last},0,0,16,16", "c": "1|0:1$FFFFFF", "m": "g", "format": "png"}
        try:
            body = self._connection().get(
                self._region_path(0, 0), params, what="a format probe", validate=lambda r: r.content
            )
        except RemoteError:
            return False
        return bool(body[:8] == PNG_START)

    # -- tiles ------------------------------------------------------------------------
    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray:
        """Not available (the source is :func:`~.base.server_rendered`): OMERO's
        webgateway serves rendered tiles, never raw pixels."""
        raise SourceError(
            "OMERO's webgateway serves rendered 8-bit tiles, not raw pixel values; read raw "
            "channels from the OME-TIFF or OME-Zarr file instead"
        )

    @property
    def projects(self) -> bool:
        """Whether the server projects z planes (``p=``) on tiles: omero-ms-image-region
        (the server that honours ``format=png``) does; OMERO.web ignores ``p`` there."""
        return self.image_format == "png"

    def _projection_param(self, projection: Any) -> dict[str, str]:
        """``p`` with its plane range spelled out, as the server is to project."""
        if projection is None:
            return {}
        planes = projection.planes(self.info.size_z)
        return {"p": f"{projection.kind}|{planes.start}:{planes.stop - 1}"}

    def read_windowed(
        self,
        level: int,
        rect: Rect,
        channels: Sequence[Any],
        *,
        z: int = 0,
        t: int = 0,
        projection: Any = None,
    ) -> np.ndarray:
        """8-bit quanta ``(c, y, x)`` of ``rect``: each channel windowed by the server
        (``projection``: a :class:`~minerva_dask.projection.Projection` the server applies)."""
        out = np.empty((len(channels), int(rect.height), int(rect.width)), np.uint8)
        for k, style in enumerate(channels):
            params = {
                "c": f"{style.index + 1}|{_num(style.start)}:{_num(style.end)}$FFFFFF",
                "m": "g",
                **self._projection_param(projection),
            }
            quantization = _quantization(style)
            if quantization:
                params["maps"] = json.dumps([quantization], separators=(",", ":"))
            out[k] = self._read_tiles(
                level, rect, params, z, t, f"channel {style.index + 1}", kind="grey"
            )
        return out

    def read_composite(
        self,
        level: int,
        rect: Rect,
        channels: Sequence[Any],
        *,
        z: int = 0,
        t: int = 0,
        model: str = "color",
        projection: Any = None,
    ) -> np.ndarray:
        """OMERO's own composite ``(y, x, 3)`` uint8 of ``rect`` (``m=c`` or ``m=g``;
        ``projection`` sent as ``p``)."""
        entries, maps = [], []
        for style in sorted(channels, key=lambda s: s.index):
            colour = (
                style.lut if getattr(style, "lut", None) else color_hex(style.color, style.alpha)
            )
            entries.append(f"{style.index + 1}|{_num(style.start)}:{_num(style.end)}${colour}")
            maps.append({"inverted": {"enabled": bool(style.inverted)}, **_quantization(style)})
        params = {
            "c": ",".join(entries),
            "m": "g" if model == "greyscale" else "c",
            "maps": json.dumps(maps, separators=(",", ":")),
            **self._projection_param(projection),
        }
        return self._read_tiles(level, rect, params, z, t, "composite", kind="rgb")

    def _region_path(self, z: int, t: int) -> str:
        return f"webgateway/render_image_region/{self.image_id}/{z}/{t}/"

    def _read_tiles(
        self,
        level: int,
        rect: Rect,
        params: dict[str, str],
        z: int,
        t: int,
        label: str,
        *,
        kind: str,
    ) -> np.ndarray:
        """Fetch the tiles covering ``rect`` and cut ``rect`` out of them: ``(y, x, 3)``
        for ``kind="rgb"`` (composite), ``(y, x)`` for ``"grey"`` (one windowed channel);
        see :mod:`._tiles` for what each kind of tile must hold."""
        spec = self.info.levels[level]
        side = self.tile_side
        bands = (3,) if kind == "rgb" else ()
        out = np.empty((int(rect.height), int(rect.width), *bands), np.uint8)
        for piece in tile_pieces(rect, (spec.width, spec.height), (side, side)):
            tile = self._fetch_tile(
                level, piece.tile_x, piece.tile_y, piece.tile_shape, params, z, t, label, kind
            )
            out[piece.target] = tile[piece.source]
        return out

    def _fetch_tile(
        self,
        level: int,
        tile_x: int,
        tile_y: int,
        shape: tuple[int, int],
        params: dict[str, str],
        z: int,
        t: int,
        label: str,
        kind: str,
    ) -> np.ndarray:
        query = dict(params, tile=f"{level},{tile_x},{tile_y},{self.tile_side},{self.tile_side}")
        if self.image_format == "png":
            query["format"] = "png"
        else:
            query["q"] = _num(self.quality)
        what = (
            f"OMERO image {self.image_id}, level {level}, tile x={tile_x} y={tile_y} "
            f"({label}, z={z}, t={t})"
        )

        def decode(response: requests.Response) -> np.ndarray:
            return decode_tile(response.content, shape, kind=kind)

        try:
            return self._connection().get(
                self._region_path(z, t), query, what=what, validate=decode
            )
        except AuthError:
            raise
        except RemoteError as exc:
            raise TileReadError(str(exc)) from None


def _rebuild(state: dict[str, Any]) -> OmeroSource:
    source = OmeroSource.__new__(OmeroSource)
    source.__dict__.update(state)
    _register_secrets(state["_config"]["credentials"], state["server"])  # in the worker too
    return source


def _register_secrets(credentials: dict[str, Any], server: str) -> None:
    """Make every credential of this source one that no message or log can print."""
    for key in ("session", "password", "cookie"):
        register_secret(credentials.get(key))
    register_url_secrets(server)


def _json_body(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise ValueError("the answer is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data
