"""The source protocol: image metadata plus "read one tile", and helpers on any source.

A source is anything with an ``info`` (:class:`ImageInfo`) and a ``read_region`` method.
Sources return raw pixels only; windows, colours and compositing happen in
:mod:`minerva_dask.kernel`. Sources must pickle into plain configuration (path or URL and
options) and reopen lazily, so a dask worker process can read tiles.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import SourceError
from ..geometry import Rect

__all__ = [
    "CachedHandleSource",
    "ChannelInfo",
    "HandleCache",
    "ImageInfo",
    "LevelInfo",
    "Source",
    "SourceBase",
    "capabilities",
    "channels_per_read",
    "default_channel_color",
    "default_window",
    "read_level",
    "server_rendered",
    "tile_mode",
]

TILE_MODES = ("raw", "windowed", "composite")

# Default colours for channels without one: blue first (DNA stains come first in most
# multiplexed panels), then the other additive primaries and secondaries.
_DEFAULT_COLORS = (
    (0.0, 0.0, 1.0),
    (0.0, 1.0, 0.0),
    (1.0, 0.0, 0.0),
    (1.0, 0.0, 1.0),
    (0.0, 1.0, 1.0),
    (1.0, 1.0, 0.0),
    (1.0, 1.0, 1.0),
)


def default_channel_color(index: int, size_c: int) -> tuple[float, float, float]:
    """Colour for channel ``index`` (0-based) of ``size_c`` when the metadata gives none.

    A single channel is white; otherwise blue, green, red, magenta, cyan, yellow, white,
    repeating.

    >>> default_channel_color(0, 1), default_channel_color(2, 4)
    ((1.0, 1.0, 1.0), (1.0, 0.0, 0.0))
    """
    if size_c == 1:
        return (1.0, 1.0, 1.0)
    return _DEFAULT_COLORS[index % len(_DEFAULT_COLORS)]


def default_window(dtype: np.dtype, significant_bits: int | None = None) -> tuple[float, float]:
    """The display window to use when the metadata gives none, in raw pixel values.

    Integers: the dtype's range, or ``0 .. 2**significant_bits - 1`` for unsigned data with
    fewer significant bits. Floats: ``0 .. 1``.

    >>> default_window(np.dtype("uint16")), default_window(np.dtype("uint16"), 12)
    ((0.0, 65535.0), (0.0, 4095.0))
    >>> default_window(np.dtype("int8"))
    (-128.0, 127.0)
    """
    dtype = np.dtype(dtype)
    if dtype.kind in "ui":
        limits = np.iinfo(dtype)
        if dtype.kind == "u" and significant_bits and 0 < significant_bits < limits.bits:
            return (0.0, float(2**significant_bits - 1))
        return (float(limits.min), float(limits.max))
    if dtype.kind == "b":
        return (0.0, 1.0)
    return (0.0, 1.0)


@dataclass(frozen=True, slots=True)
class LevelInfo:
    """One pyramid level.

    ``width``/``height`` in pixels of this level; ``tile_width``/``tile_height`` the size of
    the blocks the source reads best (a TIFF tile, a zarr chunk or shard, an OMERO tile);
    ``downsample`` the ``(fx, fy)`` factor of this level relative to level 0 (``(1, 1)``
    for level 0).
    """

    width: int
    height: int
    tile_width: int
    tile_height: int
    downsample: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """What the image says about one channel: name, default colour and window.

    ``color`` is RGB in 0..1; ``window`` is ``(start, end)`` in raw pixel values.
    """

    index: int
    name: str
    color: tuple[float, float, float]
    window: tuple[float, float]
    active: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageInfo:
    """Metadata of one image: dimensions, pixel type, pyramid levels, channels.

    ``levels[0]`` is full resolution. ``pixel_size_um`` is the ``(x, y)`` physical size of
    a level-0 pixel in micrometres, when known.
    """

    name: str
    dtype: np.dtype
    size_c: int
    size_z: int
    size_t: int
    levels: tuple[LevelInfo, ...]
    channels: tuple[ChannelInfo, ...]
    pixel_size_um: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if len(self.channels) != self.size_c:
            raise ValueError(f"{len(self.channels)} channel infos for size_c={self.size_c}")
        if not self.levels:
            raise ValueError("an image needs at least one level")

    @property
    def width(self) -> int:
        """Full-resolution width in pixels."""
        return self.levels[0].width

    @property
    def height(self) -> int:
        """Full-resolution height in pixels."""
        return self.levels[0].height

    def _repr_html_(self) -> str:
        from .._html import channel_table_html

        return channel_table_html(self)

    @property
    def downsamples(self) -> list[tuple[float, float]]:
        """``(fx, fy)`` of every level, level 0 first."""
        return [level.downsample for level in self.levels]


@runtime_checkable
class Source(Protocol):
    """What every image source provides: the core of the protocol.

    ``read_region(level, rect, channels, z=, t=)`` returns raw pixels shaped
    ``(len(channels), rect.height, rect.width)`` (axes ``c, y, x``) in the image's dtype.
    ``rect`` is in pixels of ``level`` and lies inside it; callers ask for at most one
    tile (see ``LevelInfo.tile_width``) at a time. ``channels`` are 0-based indices.

    Anything else a source can do or needs is a capability it declares by inheriting
    :class:`SourceBase` and overriding the defaults there; an object with only these
    three members is a source with the defaults (raw pixels, local, no hints). Callers
    read capabilities through :func:`capabilities`, never by probing attributes.
    """

    @property
    def info(self) -> ImageInfo: ...

    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray: ...

    def close(self) -> None: ...


class SourceBase:
    """The capabilities a source declares, each with its default; sources inherit it.

    ``tile_mode``: what the source's tiles hold (see :func:`tile_mode`): ``"raw"`` (the
    default; ``read_region`` gives raw pixels), ``"windowed"`` (``read_windowed``) or
    ``"composite"`` (``read_composite``). A source whose server renders its tiles (OMERO,
    Minerva's render-tile) cannot give raw pixels: :func:`server_rendered` says so.

    ``server_preset``: the maths of a ``"composite"`` source's tiles (``"omero"``,
    ``"minerva-render-tile"``); ``None`` for the others.

    ``io_concurrency``: reads in flight that hide a network's latency (the threaded
    scheduler gets at least that many threads); ``None`` (default): a local source.

    ``ref``: the path or URL the pixels come from, which no output may replace; ``None``
    (default) for a source without one (a server).

    ``projects``: whether a server-rendered source's server projects z planes (``p=``);
    ``reads_windowed``: whether ``read_windowed`` works, whatever ``tile_mode`` says.
    """

    tile_mode: str = "raw"
    server_preset: str | None = None
    io_concurrency: int | None = None
    ref: str | None = None
    projects: bool = False
    reads_windowed: bool = False

    def channels_per_read(self, level: int) -> int | None:
        """Channels of ``level`` stored together (:func:`channels_per_read`); None: no hint."""
        return None

    def check_styles(self, styles: Sequence[Any]) -> None:
        """Raise ``ValueError`` or ``SourceError`` for channel styles this source cannot
        draw, before any read; by default every style the kernel can draw is fine."""

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
        """``tile_mode`` ``"windowed"``: 8-bit quanta ``(c, y, x)`` of ``rect``, each of
        ``channels`` (styles) windowed by the server."""
        raise SourceError(f"{self!r} does not window channels on a server (tile_mode 'raw')")

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
        """``tile_mode`` ``"composite"``: the server's RGB ``(y, x, 3)`` uint8 of
        ``rect`` with ``channels`` (styles) composited in its maths; ``projection`` (a
        request's ``p``) only where ``projects``."""
        raise SourceError(f"{self!r} does not render composites on a server")

    def close(self) -> None:
        """Let go of what the source holds open (nothing by default)."""

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_DEFAULTS = SourceBase()


def capabilities(source: Any) -> SourceBase:
    """What ``source`` declares: itself when it inherits :class:`SourceBase`, else the
    defaults (an object with only the core :class:`Source` members). The one place a
    capability is looked up, as zarr's ``_store_supports_sync_io``."""
    return source if isinstance(source, SourceBase) else _DEFAULTS


def server_rendered(source: Any) -> bool:
    """Whether a server renders ``source``'s tiles (``tile_mode`` windowed or composite):
    :func:`tile_mode` says which read renders, and a render, a raw export or auto windows
    never rely on ``read_region``, which refuses (OMERO) or, where the raw tiles are
    readable too, gives them exactly (Minerva's render-tile mode, from S3)."""
    return tile_mode(source) != "raw"


def channels_per_read(source: Any, level: int) -> int | None:
    """How many channels ``source`` reads best together at ``level``.

    ``1`` when every channel is stored apart (a TIFF page, a zarr chunk of one channel):
    a render then reads and composites the channels of a chunk one at a time, and a task
    holds one plane, not all of them. ``n`` when ``n`` channels share a stored chunk.
    ``None`` (the default, and always for a source that reads over a network, one with an
    ``io_concurrency``): read all shown channels of a chunk at once, so a network source
    fetches them together and pays its latency once per chunk, not once per channel.
    """
    declared = capabilities(source)
    return None if declared.io_concurrency else declared.channels_per_read(level)


def tile_mode(source: Any) -> str:
    """What a source's tiles hold, the one place this capability is checked.

    ``"raw"``: ``read_region`` gives raw pixels (files). ``"windowed"``:
    ``read_windowed(level, rect, styles, z=, t=)`` gives 8-bit quanta ``(c, y, x)`` with
    each style's window applied by the server. ``"composite"``:
    ``read_composite(level, rect, styles, z=, t=, model=)`` gives the server's RGB
    ``(y, x, 3)`` in the maths ``server_preset`` names.
    """
    declared = capabilities(source)
    mode = declared.tile_mode
    if mode not in TILE_MODES:
        raise ValueError(f"source {source!r} has unknown tile_mode {mode!r}")
    if mode == "composite" and not declared.server_preset:
        raise ValueError(f"source {source!r} renders composites but names no server_preset")
    return mode


class HandleCache:
    """A small per-process LRU of open handles keyed by the arguments that opened them.

    Sources keep only their arguments; each read asks this cache for the handle, so a
    worker process opens a file once, not once per tile. Thread-safe.
    """

    def __init__(self, max_entries: int = 32) -> None:
        self._entries: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()
        self.max_entries = max_entries

    def get(self, key: Hashable, opener: Callable[[], Any]) -> Any:
        """The handle for ``key``, opening it with ``opener()`` on first use."""
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        handle = opener()
        with self._lock:
            if key in self._entries:  # another thread won the race; keep its handle
                _close(handle)
                return self._entries[key]
            self._entries[key] = handle
            while len(self._entries) > self.max_entries:
                _, old = self._entries.popitem(last=False)
                _close(old)
        return handle

    def discard(self, key: Hashable) -> None:
        """Close and forget the handle for ``key``, if open."""
        with self._lock:
            handle = self._entries.pop(key, None)
        if handle is not None:
            _close(handle)


_OPEN_HANDLES = HandleCache(max_entries=64)


class CachedHandleSource(SourceBase):
    """What every source with an open handle shares: ``info``, ``close()``, ``with``.

    The handle (a file, a zarr group, an HTTP session...) lives in a per-process cache
    keyed by :meth:`_handle_key`, so pickled copies in dask workers open their own once,
    on first use. Subclasses set ``_info`` and implement :meth:`_handle_key` and
    :meth:`_open_handle`.
    """

    _info: ImageInfo | None

    def _handle_key(self) -> Hashable:
        raise NotImplementedError

    def _open_handle(self) -> Any:
        raise NotImplementedError

    def _handle(self) -> Any:
        """This process's open handle, opened on first use."""
        return _OPEN_HANDLES.get(self._handle_key(), self._open_handle)

    def close(self) -> None:
        """Close this process's handle (it reopens on the next read)."""
        _OPEN_HANDLES.discard(self._handle_key())

    @property
    def info(self) -> ImageInfo:
        """Image metadata (see :class:`ImageInfo`)."""
        assert self._info is not None
        return self._info


def _close(handle: Any) -> None:
    close = getattr(handle, "close", None)
    if callable(close):
        close()


def read_level(
    source: Source, level: int, channels: Sequence[int] | None = None, *, z: int = 0, t: int = 0
) -> np.ndarray:
    """Read a whole level eagerly as ``(c, y, x)``, tile by tile. For small levels and tests.

    Raw pixels only: a :func:`server_rendered` source is refused before any read."""
    if server_rendered(source):
        raise SourceError(
            f"{source!r} serves rendered tiles (tile_mode {tile_mode(source)!r}), not raw "
            "pixel values; reading a level needs a file source (OME-TIFF, OME-Zarr)"
        )
    info = source.info
    spec = info.levels[level]
    channels = list(range(info.size_c)) if channels is None else list(channels)
    out = np.empty((len(channels), spec.height, spec.width), dtype=info.dtype)
    for y in range(0, spec.height, spec.tile_height):
        for x in range(0, spec.width, spec.tile_width):
            w = min(spec.tile_width, spec.width - x)
            h = min(spec.tile_height, spec.height - y)
            out[:, y : y + h, x : x + w] = source.read_region(
                level, Rect(x, y, w, h), channels, z=z, t=t
            )
    return out
