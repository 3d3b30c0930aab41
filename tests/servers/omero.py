"""An emulating OMERO.web server on 127.0.0.1, honest to ``api-contract.md`` (1-5, 8).

It serves real pixels (OME-TIFF levels read with tifffile, or any numpy pyramid, or a
procedural image for sizes no memory holds) through the webgateway and OMERO.figure
endpoints, with the contract's quantization and truncating composite, JPEG at ``q`` (or
0.85) and PNG only when configured as the omero-ms-image-region micro-service. It knows
the JSON-API login, session cookies, ``bsession``, anonymous 302/403, and the 400
messages of the contract. ``Faults`` switches inject latency, 500s, dropped
connections, truncated JPEGs, failing tiles, expiring sessions and ConcurrencyException.

It imports nothing from minerva_dask: the tests check minerva_dask against it.
"""

from __future__ import annotations

import io
import json
import math
import secrets
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np
from PIL import Image

from tests.servers import LoopbackServer

MAX_TILE_LENGTH = 1024
LUTS = {"cool.lut": lambda q: np.stack([q, 255 - q, np.full_like(q, 255)], axis=-1)}

# ---------------------------------------------------------------------------- images


@dataclass
class ServedImage:
    """One image: level sizes, a pixel reader, channel settings, tile size.

    ``read(level, t, c, z, y0, y1, x0, x1)`` returns raw pixels ``(y, x)``.
    """

    name: str
    sizes: list[tuple[int, int]]  # (width, height) per level, 0 = full resolution
    read: Callable[..., np.ndarray]
    dtype: np.dtype
    size_c: int
    size_z: int = 1
    size_t: int = 1
    tile: tuple[int, int] = (256, 256)
    labels: list[str] | None = None
    colors: list[str] | None = None
    windows: list[tuple[float, float]] | None = None
    pixel_size_um: float | None = 0.65
    send_resolutions: bool = True

    @property
    def pyramid(self) -> bool:
        return len(self.sizes) > 1

    @classmethod
    def from_levels(cls, name: str, levels: list[np.ndarray], **kwargs: Any) -> ServedImage:
        """From arrays shaped ``(t, c, z, y, x)`` (or ``(c, y, x)``), level 0 first."""
        levels = [
            lv.reshape((1, lv.shape[0], 1, *lv.shape[1:])) if lv.ndim == 3 else lv for lv in levels
        ]

        def read(level, t, c, z, y0, y1, x0, x1):
            return levels[level][t, c, z, y0:y1, x0:x1]

        t, c, z = levels[0].shape[:3]
        sizes = [(lv.shape[4], lv.shape[3]) for lv in levels]
        return cls(name, sizes, read, levels[0].dtype, c, z, t, **kwargs)

    @classmethod
    def from_tiff_lazily(cls, path: str, **kwargs: Any) -> ServedImage:
        """A ``(C, Y, X)`` TIFF pyramid read tile by tile on demand (for huge, sparse files)."""
        import tifffile
        import zarr

        tif = tifffile.TiffFile(path)
        series = tif.series[0]
        group = zarr.open(series.aszarr(), mode="r")
        arrays = [group[str(i)] for i in range(len(series.levels))]

        def read(level, t, c, z, y0, y1, x0, x1):
            return arrays[level][c, y0:y1, x0:x1]

        sizes = [(a.shape[2], a.shape[1]) for a in arrays]
        kwargs.setdefault("tile", (series.keyframe.tilewidth, series.keyframe.tilelength))
        return cls(
            str(path).rsplit("/", 1)[-1], sizes, read, arrays[0].dtype, arrays[0].shape[0], **kwargs
        )

    @classmethod
    def from_tiff(cls, path: str, **kwargs: Any) -> ServedImage:
        """All levels of a TIFF's first series, read with tifffile."""
        import tifffile

        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            base_axes = series.axes.upper().replace("S", "C").replace("I", "C")
            levels = []
            for level in series.levels:
                data, axes = level.asarray(), base_axes
                for missing in "TCZ":
                    if missing not in axes:
                        data, axes = data[np.newaxis], missing + axes
                levels.append(np.transpose(data, [axes.index(a) for a in "TCZYX"]))
        kwargs.setdefault(
            "tile", (series.keyframe.tilewidth or 256, series.keyframe.tilelength or 256)
        )
        return cls.from_levels(str(path).rsplit("/", 1)[-1], levels, **kwargs)

    def scales(self) -> list[float]:
        return [w / self.sizes[0][0] for w, _ in self.sizes]

    def channel_json(self, i: int) -> dict[str, Any]:
        info = np.iinfo(self.dtype) if self.dtype.kind in "ui" else None
        low, high = (float(info.min), float(info.max)) if info else (0.0, 1.0)
        start, end = self.windows[i] if self.windows else (low, high)
        return {
            "emissionWave": None,
            "label": self.labels[i] if self.labels else str(i),
            "color": self.colors[i] if self.colors else ["0000FF", "00FF00", "FF0000"][i % 3],
            "inverted": False,
            "reverseIntensity": False,
            "family": "linear",
            "coefficient": 1.0,
            "window": {"min": low, "max": high, "start": start, "end": end},
            "active": True,
        }

    def img_data(self, image_id: int) -> dict[str, Any]:
        width, height = self.sizes[0]
        kind = {"float32": "float", "float64": "double"}.get(self.dtype.name, self.dtype.name)
        data: dict[str, Any] = {
            "id": image_id,
            "meta": {
                "imageName": self.name,
                "imageDescription": "",
                "imageAuthor": "Test",
                "imageArchived": False,
                "projectName": "Multiple",
                "projectId": None,
                "datasetName": "test",
                "datasetId": 1,
                "imageTimestamp": 1531000000.0,
                "imageId": image_id,
                "pixelsType": kind,
                "wellSampleId": "",
                "wellId": "",
            },
            "perms": {"canAnnotate": True, "canEdit": False, "canDelete": False, "canLink": True},
            "tiles": self.pyramid,
            "interpolate": True,
            "size": {
                "width": width,
                "height": height,
                "z": self.size_z,
                "t": self.size_t,
                "c": self.size_c,
            },
            "pixel_size": {"x": self.pixel_size_um, "y": self.pixel_size_um, "z": None},
            "init_zoom": 0,
            "pixel_range": [0, 65535],
            "channels": [self.channel_json(i) for i in range(self.size_c)],
            "split_channel": {
                "g": {
                    "width": 2 * width + 6,
                    "height": height + 4,
                    "border": 2,
                    "gridx": 2,
                    "gridy": 1,
                }
            },
            "rdefs": {
                "model": "color",
                "projection": "normal",
                "defaultZ": 0,
                "defaultT": 0,
                "invertAxis": False,
            },
        }
        if self.pyramid:
            data["tile_size"] = {"width": self.tile[0], "height": self.tile[1]}
            data["levels"] = len(self.sizes)
            data["zoomLevelScaling"] = {str(i): s for i, s in enumerate(self.scales())}
            if self.send_resolutions:
                data["resolutions"] = {
                    str(i): {"sizeX": w, "sizeY": h} for i, (w, h) in enumerate(self.sizes)
                }
        return data


# ---------------------------------------------------------------------------- maths


def split_channel_info(text: str) -> list[tuple[int, float | None, float | None, str | None]]:
    """OMERO's ``_split_channel_info`` (api-contract.md 1.3), quirks included."""
    out = []
    for entry in text.split(","):
        head, _, rest = entry.partition("|")
        colour = None
        if "$" in head:
            head, _, colour = head.partition("$")
        try:
            index = int(head)
        except ValueError:
            continue  # silently dropped
        window, _, colour_part = rest.partition("$")
        colour = colour_part or colour
        start = end = None
        parts = window.split(":")
        if len(parts) == 2:
            try:
                start, end = float(parts[0]), float(parts[1])
            except ValueError:
                start = end = None
        out.append((index, start, end, colour or None))
    return out


def split_html_color(colour: str) -> tuple[int, int, int, int] | None:
    """omero-py ``splitHTMLColor``: 3/4 digits doubled, 6 get alpha FF, 8 include alpha."""
    text = colour.lstrip("#")
    if len(text) in (3, 4):
        text = "".join(c * 2 for c in text)
    if len(text) == 6:
        text += "FF"
    if len(text) != 8:
        return None
    try:
        return tuple(int(text[i : i + 2], 16) for i in range(0, 8, 2))  # type: ignore[return-value]
    except ValueError:
        return None


def quantize(
    x: np.ndarray, start: float, end: float, family: str = "linear", coefficient: float = 1.0
) -> np.ndarray:
    """REN Quantization_8_16_bit: javaRound(255 * ((x - s)/(e - s))^k), 0 below, 255 above."""
    x = x.astype(np.float64)
    if end <= start:
        return np.where(x >= end, 255, 0).astype(np.int32)
    v = np.clip((x - start) / (end - start), 0, 1)
    if family == "polynomial":
        v = v**coefficient
    q = np.floor(255.0 * v + 0.5)
    return np.where(x < start, 0, np.where(x >= end, 255, q)).astype(np.int32)


@dataclass
class ChannelState:
    index: int  # 0-based
    start: float
    end: float
    rgba: tuple[int, int, int, int]
    lut: str | None = None
    inverted: bool = False
    family: str = "linear"
    coefficient: float = 1.0


def rendering_settings(image: ServedImage, query: dict[str, str]) -> tuple[list[ChannelState], str]:
    """Active channels with windows, colours and maps applied as OMERO does; and the model.

    ``set_active_channels``: walking channels in ascending order, every listed channel
    (shown or hidden) consumes the next ``c`` entry in URL order, so an unsorted ``c``
    pairs windows with the wrong channels, as in OMERO. Unlisted channels are off;
    indices 0 or beyond the image are ignored; invalid ``maps`` JSON is ignored.
    """
    if "c" in query:
        entries = split_channel_info(query["c"])
    else:  # saved settings: every channel on
        entries = [(i + 1, None, None, None) for i in range(image.size_c)]
    try:
        maps = json.loads(query["maps"]) if "maps" in query else []
    except ValueError:
        maps = []
    listed = {abs(e[0]) for e in entries}
    shown = {e[0] for e in entries if e[0] > 0}
    states, counter = [], 0
    for c in range(image.size_c):
        if c + 1 not in listed:
            continue
        position = counter
        counter += 1
        if c + 1 not in shown or position >= len(entries):
            continue
        _, start, end, colour = entries[position]
        default = image.channel_json(c)
        state = ChannelState(
            c,
            default["window"]["start"],
            default["window"]["end"],
            split_html_color(default["color"]) or (255, 255, 255, 255),
        )
        if start is not None and end is not None:
            state.start, state.end = start, end
        if colour and colour.endswith(".lut"):
            state.lut = colour
        elif colour and split_html_color(colour):
            state.rgba = split_html_color(colour)  # type: ignore[assignment]
        item = maps[position] if position < len(maps) and isinstance(maps[position], dict) else {}
        for key in ("reverse", "inverted"):
            if isinstance(item.get(key), dict) and "enabled" in item[key]:
                state.inverted = bool(item[key]["enabled"])
        quant = item.get("quantization")
        if isinstance(quant, dict):
            state.family = quant.get("family", "linear")
            state.coefficient = float(quant.get("coefficient", 1.0))
        states.append(state)
    model = {"g": "greyscale", "c": "color"}.get(query.get("m", ""), "color")
    return states, model


def projected(image: ServedImage, p: str) -> ServedImage:
    """``image`` with every plane read as the projection ``p`` (``kind|start:end``), as
    omero-ms-image-region's ProjectionService (@752d3604) computes it: the maximum starts
    at 0 and includes END; mean and sum stop *before* END (its loop is ``z < end``), the
    mean truncated into the pixel type, sum and mean clipped at the type's maximum."""
    kind, _, span = p.partition("|")
    start, end = (int(v) for v in span.split(":")) if span else (0, image.size_z - 1)

    def read(level, t, c, z, y0, y1, x0, x1):
        if kind == "intmax":
            planes = [image.read(level, t, c, k, y0, y1, x0, x1) for k in range(start, end + 1)]
            return np.maximum(np.max(planes, axis=0), 0).astype(image.dtype)
        planes = [image.read(level, t, c, k, y0, y1, x0, x1) for k in range(start, end)]
        total = np.sum(np.asarray(planes, np.float64), axis=0)
        value = total / len(planes) if kind == "intmean" else total
        top = np.iinfo(image.dtype).max
        return np.trunc(np.minimum(value, top)).astype(image.dtype)

    return replace(image, read=read)


def render_rgb(
    image: ServedImage,
    level: int,
    z: int,
    t: int,
    x: int,
    y: int,
    w: int,
    h: int,
    states: list[ChannelState],
    model: str,
) -> np.ndarray:
    """The engine's packed RGB for a clipped region: m=g grey first channel, else additive."""

    def quantum(s: ChannelState) -> np.ndarray:  # the 8-bit quantum, reversed if inverted
        raw = image.read(level, t, s.index, z, y, y + h, x, x + w)
        q = quantize(raw, s.start, s.end, s.family, s.coefficient)
        return 255 - q if s.inverted else q

    if model == "greyscale":
        if not states:
            return np.zeros((h, w, 3), np.uint8)
        q = quantum(states[0])
        return np.repeat(q.astype(np.uint8)[..., np.newaxis], 3, axis=2)
    out = np.zeros((h, w, 3), np.int32)
    use_alpha = any(s.rgba[3] != 255 for s in states if s.lut is None)
    for s in states:
        q = quantum(s)
        if s.lut is not None:
            if s.lut in LUTS:
                out = np.minimum(255, out + LUTS[s.lut](q))
            continue
        for i in range(3):
            add = (s.rgba[i] / 255.0 * q).astype(np.int32)
            if use_alpha:
                add = (add * s.rgba[3] / 255.0).astype(np.int32)
            out[..., i] = np.minimum(255, out[..., i] + add)
    return out.astype(np.uint8)


def encode(
    rgb: np.ndarray, *, fmt: str = "jpeg", quality: float | None = None
) -> tuple[bytes, str]:
    buf = io.BytesIO()
    if fmt == "png":
        Image.fromarray(rgb).save(buf, "PNG")
        return buf.getvalue(), "image/png"
    Image.fromarray(rgb).save(buf, "JPEG", quality=round(100 * quality) if quality else 85)
    return buf.getvalue(), "image/jpeg"


# ---------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Switches for injecting trouble. Rates are shares of tile requests, applied
    deterministically per URL and never more than ``max_consecutive`` times in a row for
    the same URL, so a client that retries enough always succeeds; ``fail_tiles`` fail
    every time."""

    latency_s: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    truncate_rate: float = 0.0
    max_consecutive: int = 2
    fail_tiles: set[tuple[int, int, int]] = field(default_factory=set)
    # tiles (level, x, y) answered, every time, in colour mode (m=c) with a valid grey
    # (one-band, mode L) image of the right size: a wrong tile, not a broken body
    grey_tiles: set[tuple[int, int, int]] = field(default_factory=set)
    expire_after: int | None = None  # an authenticated session dies after N requests
    busy_imgdata: int = 0  # first N imgData calls answer ConcurrencyException
    busy_backoff_ms: int = 50
    trickle_tiles: int = 0  # first N tile answers send their body a byte at a time...
    trickle_s: float = 0.5  # ...this many seconds apart (a slow-loris server)
    refuse_first: int = 0  # first N requests of any kind answer 401 (a proxy's hiccup)


class OmeroState:
    """The server's world: images, users, sessions, faults, counters."""

    def __init__(
        self,
        images: dict[int, ServedImage],
        *,
        users: dict[str, str] | None = None,
        public: bool = False,
        png: bool = False,
        faults: Faults | None = None,
    ) -> None:
        self.images = images
        self.users = users if users is not None else {"alice": "wonderland"}
        self.public = public
        self.png = png
        self.faults = faults or Faults()
        self.lock = threading.Lock()
        self.omero_sessions: dict[str, str] = {}  # OMERO session key -> user
        self.web_sessions: dict[str, dict[str, Any]] = {}  # sessionid cookie -> state
        self.csrf_tokens: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.streak: dict[str, int] = {}
        self.counts = {"tiles": 0, "imgData": 0, "logins": 0, "faults": 0, "requests": 0}
        self.advertised_base: str | None = None  # the base /api/ advertises; None: its own
        self.tls = False
        self.seen_passwords: list[str] = []  # every password a login POST carried
        self.tile_log: list[str] = []

    def new_omero_session(self, user: str) -> str:
        key = secrets.token_hex(16)
        self.omero_sessions[key] = user
        return key

    def fault_for(self, url: str, kinds: list[tuple[str, float]]) -> str | None:
        """Deterministic fault choice for this attempt at ``url``."""
        with self.lock:
            attempt = self.attempts.get(url, 0)
            self.attempts[url] = attempt + 1
            if self.streak.get(url, 0) >= self.faults.max_consecutive:
                self.streak[url] = 0
                return None
            draw = (zlib.crc32(f"{url}#{attempt}".encode()) % 10_000) / 10_000
            edge = 0.0
            for kind, rate in kinds:
                edge += rate
                if draw < edge:
                    self.streak[url] = self.streak.get(url, 0) + 1
                    self.counts["faults"] += 1
                    return kind
            self.streak[url] = 0
            return None


# ---------------------------------------------------------------------------- handler


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: OmeroState

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # -- plumbing ------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes = b"",
        kind: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(data).encode(), "application/json", headers)

    def _cookies(self) -> dict[str, str]:
        out = {}
        for part in self.headers.get("Cookie", "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep:
                out[key] = value
        return out

    def _query(self) -> dict[str, str]:
        return {
            k: v[-1] for k, v in parse_qs(urlsplit(self.path).query, keep_blank_values=True).items()
        }

    def _authenticated(self, query: dict[str, str]) -> tuple[bool, dict[str, str]]:
        """Session cookie, or bsession (which makes a cookie), or the public user."""
        state, headers = self.state, {}
        with state.lock:
            cookie = self._cookies().get("sessionid")
            web = state.web_sessions.get(cookie or "")
            if web is None and query.get("bsession") in state.omero_sessions:
                cookie = secrets.token_hex(16)
                web = {"key": query["bsession"], "count": 0}
                state.web_sessions[cookie] = web
                headers["Set-Cookie"] = f"sessionid={cookie}; Path=/; HttpOnly"
            if web is not None and web["key"] not in state.omero_sessions:
                state.web_sessions.pop(cookie, None)  # the OMERO session behind it expired
                web = None
            if web is not None:
                web["count"] += 1
                limit = state.faults.expire_after
                if limit is not None and web["count"] > limit:
                    state.web_sessions.pop(cookie, None)
                    state.omero_sessions.pop(web["key"], None)
                    web = None
        return (web is not None or state.public), headers

    def _refuse_anonymous(self) -> None:
        if self.headers.get("X-Requested-With") == "XMLHttpRequest":
            self._send(403, b"Forbidden")
        else:
            self._send(302, b"", headers={"Location": "/webclient/login/?url=" + quote(self.path)})

    # -- routes --------------------------------------------------------------------
    def _refused_by_fault(self) -> bool:
        with self.state.lock:
            self.state.counts["requests"] += 1
            refuse = self.state.counts["requests"] <= self.state.faults.refuse_first
        if refuse:
            self._json(401, {"message": "Unauthorized (a transient refusal)"})
        return refuse

    def do_GET(self) -> None:
        if self._refused_by_fault():
            return
        path = urlsplit(self.path).path
        query = self._query()
        parts = [p for p in path.split("/") if p]
        try:
            if parts[:1] == ["api"]:
                return self._api(parts, query)
            if (
                parts[:2] == ["webgateway", "imgData"]
                or parts[:2] == ["webgateway", "render_image_region"]
                or parts[:2] == ["figure", "render_scaled_region"]
            ):
                ok, headers = self._authenticated(query)
                if not ok:
                    return self._refuse_anonymous()
                self._pending_headers = headers
                if self.state.faults.latency_s:
                    time.sleep(self.state.faults.latency_s)
                if parts[1] == "imgData":
                    return self._img_data(parts)
                if parts[1] == "render_image_region":
                    return self._render_image_region(parts, query)
                return self._render_scaled_region(parts, query)
            self._send(404, b"Not Found")
        except BrokenPipeError:
            pass

    def do_POST(self) -> None:
        if self._refused_by_fault():
            return
        parts = [p for p in urlsplit(self.path).path.split("/") if p]
        if parts == ["api", "v0", "login"]:
            return self._login()
        self._send(405, b"Method Not Allowed")

    def _base(self) -> str:
        if self.state.advertised_base:  # a proxy that terminates TLS and says http://...
            return self.state.advertised_base
        return f"{'https' if self.state.tls else 'http'}://{self.headers.get('Host')}"

    def _api(self, parts: list[str], query: dict[str, str]) -> None:
        base = self._base()
        if parts == ["api"]:
            return self._json(200, {"data": [{"version": "0", "url:base": f"{base}/api/v0/"}]})
        if parts == ["api", "v0"]:
            return self._json(
                200,
                {
                    key: f"{base}/api/v0/{key[4:]}/"
                    for key in ("url:login", "url:token", "url:servers", "url:images")
                },
            )
        if parts == ["api", "v0", "token"]:
            token = secrets.token_hex(16)
            self.state.csrf_tokens.add(token)
            return self._json(200, {"data": token}, {"Set-Cookie": f"csrftoken={token}; Path=/"})
        if parts == ["api", "v0", "servers"]:
            return self._json(
                200, {"data": [{"id": 1, "host": "localhost", "port": 4064, "server": "omero"}]}
            )
        if parts == ["api", "v0", "login"]:
            return self._json(405, {"message": "Method GET not allowed"})
        self._send(404, b"Not Found")

    def _login(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        body = self.rfile.read(length).decode()
        if self.headers.get("Content-Type", "").startswith("application/json"):
            form = json.loads(body or "{}")
        else:
            form = {k: v[-1] for k, v in parse_qs(body).items()}
        self.state.seen_passwords.append(str(form.get("password")))
        token = self._cookies().get("csrftoken")
        if (
            not token
            or token not in self.state.csrf_tokens
            or self.headers.get("X-CSRFToken") != token
            or not self.headers.get("Referer")
        ):
            return self._json(403, {"message": "CSRF Failed: CSRF token missing or incorrect."})
        user, password = form.get("username"), form.get("password")
        if user not in self.state.users or self.state.users[user] != password:
            return self._json(
                403, {"message": "Login failed. Reason: Incorrect username or password"}
            )
        with self.state.lock:
            key = self.state.new_omero_session(user)
            cookie = secrets.token_hex(16)
            self.state.web_sessions[cookie] = {"key": key, "count": 0}
            self.state.counts["logins"] += 1
        context = {
            "sessionId": 1,
            "sessionUuid": key,
            "userId": 2,
            "userName": user,
            "groupId": 3,
            "groupName": "lab",
            "isAdmin": False,
            "eventId": -1,
            "eventType": "User",
            "memberOfGroups": [3],
            "leaderOfGroups": [],
        }
        self._json(
            200,
            {"success": True, "eventContext": context},
            {"Set-Cookie": f"sessionid={cookie}; Path=/; HttpOnly"},
        )

    def _image(self, text: str) -> tuple[int, ServedImage] | None:
        if not text.isdigit() or int(text) not in self.state.images:
            self._send(404, f"Image:{text} not found".encode(), headers=self._pending_headers)
            return None
        return int(text), self.state.images[int(text)]

    def _img_data(self, parts: list[str]) -> None:
        found = self._image(parts[2] if len(parts) > 2 else "")
        if not found:
            return
        with self.state.lock:
            self.state.counts["imgData"] += 1
            busy = self.state.counts["imgData"] <= self.state.faults.busy_imgdata
        if busy:
            return self._json(
                200,
                {"ConcurrencyException": {"backOff": self.state.faults.busy_backoff_ms}},
                self._pending_headers,
            )
        self._json(200, found[1].img_data(found[0]), self._pending_headers)

    def _bad(self, message: str) -> None:
        self._send(400, message.encode(), headers=self._pending_headers)

    def _render_image_region(self, parts: list[str], query: dict[str, str]) -> None:
        if len(parts) != 5 or not parts[3].isdigit() or not parts[4].isdigit():
            return self._send(404, b"Not Found")
        found = self._image(parts[2])
        if not found:
            return
        _, image = found
        z, t = int(parts[3]), int(parts[4])
        levels = len(image.sizes)
        if "tile" in query:
            try:
                fields = [int(v) for v in query["tile"].split(",")]
                if len(fields) not in (3, 5):
                    raise ValueError
            except ValueError:
                return self._bad(f"malformed tile argument, tile={query['tile']}")
            level, tx, ty = fields[:3]
            tw, th = fields[3:] if len(fields) == 5 else image.tile
            tw = image.tile[0] if tw <= 0 else min(tw, MAX_TILE_LENGTH)
            th = image.tile[1] if th <= 0 else min(th, MAX_TILE_LENGTH)
            if level < 0:
                return self._bad(f"Invalid resolution level {level} < 0")
            if not image.pyramid and level > 0:
                return self._bad(f"Invalid resolution level {level}, non pyramid file")
            if level > levels - 1:
                return self._bad(
                    f"Invalid resolution level, {level} > number of available levels {levels - 1}"
                )
            x, y = tx * tw, ty * th
            w, h = tw, th
            key = (level, tx, ty)
        elif "region" in query:
            try:
                x, y, w, h = (int(v) for v in query["region"].split(","))
            except ValueError:
                return self._bad(f"malformed region argument, region={query['region']}")
            level, key = 0, None
        else:
            return self._bad("tile or region argument required")
        width, height = image.sizes[level]
        if x < 0 or y < 0 or x >= width or y >= height or w <= 0 or h <= 0:
            return self._send(404, b"Not Found", headers=self._pending_headers)
        w, h = min(w, width - x), min(h, height - y)  # the server clips; edge tiles are smaller
        states, model = rendering_settings(image, query)
        if key is not None:
            self.state.counts["tiles"] += 1
            self.state.tile_log.append(self.path)
            if key in self.state.faults.fail_tiles:
                return self._send(500, b"Internal Server Error")
            fault = self.state.fault_for(
                self.path,
                [
                    ("error", self.state.faults.error_rate),
                    ("drop", self.state.faults.drop_rate),
                    ("truncate", self.state.faults.truncate_rate),
                ],
            )
            if fault == "error":
                return self._send(500, b"Internal Server Error")
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
        else:
            fault = None
        if self.state.png and query.get("p", "normal") != "normal":
            image = projected(image, query["p"])  # omero-ms-image-region projects; OMERO.web not
        rgb = render_rgb(image, level, z, t, x, y, w, h, states, model)
        if key in self.state.faults.grey_tiles and model == "color":
            rgb = rgb.max(axis=2)  # one band: the encoder writes a grey (mode L) image
        fmt = "png" if self.state.png and query.get("format") == "png" else "jpeg"
        quality = float(query["q"]) if "q" in query else None
        body, kind = encode(rgb, fmt=fmt, quality=quality)
        if fault == "truncate":
            body = body[: len(body) // 2]
        with self.state.lock:
            trickle = self.state.faults.trickle_tiles > 0
            self.state.faults.trickle_tiles -= trickle
        if key is not None and trickle:
            return self._trickle(body, kind)
        self._send(200, body, kind, self._pending_headers)

    def _trickle(self, body: bytes, kind: str) -> None:
        """Answer 200 with the whole Content-Length promised, then a byte at a time."""
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for i in range(len(body)):
                self.wfile.write(body[i : i + 1])
                self.wfile.flush()
                time.sleep(self.state.faults.trickle_s)
        except OSError:  # the client gave up on us, as it should
            self.close_connection = True

    def _render_scaled_region(self, parts: list[str], query: dict[str, str]) -> None:
        """OMERO.figure views.py render_scaled_region (api-contract.md 3)."""
        found = self._image(parts[2] if len(parts) > 2 else "")
        if not found:
            return
        _, image = found
        z, t = int(parts[3]), int(parts[4])
        try:
            x, y, w, h = (float(v) for v in query["region"].split(","))
        except (KeyError, ValueError):
            return self._bad("region required")
        max_size = int(query.get("max_size", 2000))
        states, model = rendering_settings(image, query)
        scales = image.scales() if image.pyramid else None
        if scales is None:
            level, scale = 0, 1.0
        else:
            max_level = len(scales) - 1
            longest = max(w, h)
            zm = max_level
            while zm > 0 and scales[zm - 1] * longest < max_size:
                zm -= 1
            level, scale = zm, scales[zm]
        x, y, w, h = (int(v * scale) for v in (x, y, w, h))  # int(): toward zero
        width, height = image.sizes[level]
        quality = float(query["q"]) if "q" in query else None
        if x < 0 or y < 0 or x + w > width or y + h > height:
            canvas = np.full((h, w, 3), 221, np.uint8)
            paste_x, paste_y = (-x if x < 0 else 0), (-y if y < 0 else 0)
            rx, ry = max(x, 0), max(y, 0)
            rw = min(w - paste_x, width - rx)
            rh = min(h - paste_y, height - ry)
            if rw > 0 and rh > 0:
                canvas[paste_y : paste_y + rh, paste_x : paste_x + rw] = render_rgb(
                    image, level, z, t, rx, ry, rw, rh, states, model
                )
            body, kind = encode(canvas, quality=0.9)
        else:
            rgb = render_rgb(image, level, z, t, x, y, w, h, states, model)
            body, kind = encode(rgb, quality=quality)
        self._send(200, body, kind, self._pending_headers)


class OmeroServer(LoopbackServer):
    """``with OmeroServer(images) as server:`` serves on ``server.url`` (127.0.0.1)."""

    def __init__(self, images: dict[int, ServedImage], *, tls: Any = None, **options: Any) -> None:
        self.state = OmeroState(images, **options)
        self.state.tls = tls is not None
        handler = type("Handler", (_Handler,), {"state": self.state, "_pending_headers": {}})
        super().__init__(handler, tls=tls)

    @property
    def faults(self) -> Faults:
        return self.state.faults

    def login_key(self, user: str = "alice") -> str:
        """An OMERO session key, as ``omero sessions key`` prints it."""
        with self.state.lock:
            return self.state.new_omero_session(user)


def procedural_image(
    width: int, height: int, size_c: int = 3, levels: int = 5, tile: tuple[int, int] = (256, 256)
) -> ServedImage:
    """A huge uint16 image computed from coordinates (for sizes no memory holds)."""
    sizes = [(math.ceil(width / 2**i), math.ceil(height / 2**i)) for i in range(levels)]

    def read(level, t, c, z, y0, y1, x0, x1):
        f = 2**level
        yy = np.arange(y0, y1, dtype=np.int64)[:, None] * f
        xx = np.arange(x0, x1, dtype=np.int64)[None, :] * f
        return ((xx * (3 + c) + yy * (5 + 2 * c)) % 65536).astype(np.uint16)

    return ServedImage("procedural", sizes, read, np.dtype("uint16"), size_c, tile=tile)
