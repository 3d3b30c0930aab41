"""OME-TIFF (and other tiled TIFF pyramids) through tifffile.

Handles SubIFD pyramids, page pyramids, one series per level (``_tiff_series``), flat
images, strips or tiles, either byte order, any dtype, interleaved samples as channels.
Level shapes and factors come from the file. Channel names, colours and pixel size come
from OME-XML when it agrees with what the TIFF really holds; otherwise the TIFF wins,
with a warning.

Tiled levels with one sample per pixel (the usual OME-TIFF) are read tile by tile with
tifffile alone (``_tiff_tiles``); other layouts through tifffile's zarr store
(``series.aszarr()``). Either way only the tiles or strips a read touches are decoded.

Threads read one open file together: every seek and read of tifffile's file handle holds
that handle's own lock, and tile bytes of a local file are read by offset (``os.pread``)
on a descriptor of our own (see ``_tiff_tiles``).
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import tifffile

from ..errors import AuthError, SourceError, SourceNotFoundError, TileReadError
from ..geometry import Rect
from ..ome_xml import OmeImage, parse_ome_images
from ._axes import check_axes, read_block
from ._fs import (
    exists_or_raise,
    file_identity,
    fs_storage_options,
    is_url,
    local_path,
    redact_url,
    remote_concurrency,
)
from ._ranges import (
    NoRangeSupportError,
    fetch_whole,
    ignores_ranges,
    memory_reader,
    no_range_support,
    range_reader,
    whole_file_max_bytes,
)
from ._tiff_series import series_levels
from ._tiff_tiles import PositionalFile, TiledPlanes, segment_past_end, share_one_lock
from .base import (
    CachedHandleSource,
    ChannelInfo,
    ImageInfo,
    LevelInfo,
    default_channel_color,
    default_window,
)

__all__ = ["OmeTiffSource"]

logger = logging.getLogger(__name__)

# Strip-organised levels are read in blocks of about this many pixels, full width.
_STRIP_BLOCK_PIXELS = 1 << 20
# More samples per pixel than this is not a colour image: such files hold planes.
_MAX_PLAUSIBLE_SAMPLES = 4


class _Complaints(logging.Handler):
    """The errors tifffile logs while a file opens (cut short, a broken IFD chain)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(" ".join(record.getMessage().split())[:200])


class _Opened:
    """An open TIFF: the file, the chosen series, its zarr levels and parsed metadata."""

    def __init__(
        self, ref: str, storage_options: dict[str, Any], series: int, by_series: bool = True
    ) -> None:
        self._fileobj = None
        self._positional: PositionalFile | None = None
        whole: bytes | None = None  # the file, from a server that ignores Range
        if is_url(ref):
            import fsspec

            limit = whole_file_max_bytes(storage_options)
            options = fs_storage_options(ref, storage_options)
            self._fileobj = fsspec.open(ref, mode="rb", **options).open()
            target: Any = self._fileobj
            try:
                if ignores_ranges(self._fileobj):
                    whole = fetch_whole(self._fileobj, ref, limit)
                    target = io.BytesIO(whole)
            except BaseException:
                self.close()
                raise
        else:
            target = local_path(ref)
        tiff_logger = logging.getLogger("tifffile")
        previous, propagate = tiff_logger.level, tiff_logger.propagate
        tiff_logger.setLevel(logging.ERROR)  # we summarise inconsistencies ourselves
        complaints = _Complaints()  # what tifffile finds wrong while opening: one warning
        tiff_logger.addHandler(complaints)
        tiff_logger.propagate = False
        try:
            self.tif = tifffile.TiffFile(target)
            if not 0 <= series < len(self.tif.series):
                raise SourceError(
                    f"{redact_url(ref)} has {len(self.tif.series)} series; series={series} "
                    "does not exist"
                )
            self.series = self.tif.series[series]
            # the level series: SubIFDs or pages, else one series per level
            levels = series_levels(self.tif, series, ref) if by_series else self.series.levels
            self.level_series = levels
            # the file handle's own lock, for every seek and read of it, ours and tifffile's
            lock = share_one_lock(self.tif, levels)
            fetch = None
            if whole is not None:  # fetched whole: ranges of it in memory
                fetch = memory_reader(whole)
            elif self._fileobj is not None:  # remote: the file's own filesystem, by ranges
                fetch = range_reader(self._fileobj.fs, self._fileobj.path, ref)
            elif PositionalFile.available():  # local: by offset, no shared file position
                self._positional = PositionalFile(target)
                fetch = self._positional
            self.levels: list[Any] = [
                TiledPlanes(level, lock, fetch) if TiledPlanes.supports(level) else None
                for level in levels
            ]
            if None in self.levels:  # another layout: tifffile's zarr store reads it
                import zarr

                if len(levels) > len(self.series.levels):  # one series per level: a store each
                    stored = [zarr.open(level.aszarr(), mode="r") for level in levels]
                else:
                    node = zarr.open(self.series.aszarr(), mode="r")
                    stored = (
                        [node[str(i)] for i in range(len(levels))] if len(levels) > 1 else [node]
                    )
                self.levels = [
                    ours or theirs for ours, theirs in zip(self.levels, stored, strict=True)
                ]
                size = self.tif.filehandle.size
                for index, (ours, level) in enumerate(zip(self.levels, levels, strict=True)):
                    past = None if isinstance(ours, TiledPlanes) else segment_past_end(level, size)
                    if past:  # TiledPlanes checks each tile as it reads it
                        raise SourceError(
                            f"{redact_url(ref)}: level {index}, {past} run past the end of "
                            f"the file ({size} bytes): the file is truncated or corrupt"
                        )
        except tifffile.TiffFileError as exc:
            self.close()
            raise SourceError(f"{redact_url(ref)} is not a readable TIFF: {exc}") from None
        except (IsADirectoryError, PermissionError) as exc:
            self.close()
            raise SourceError(f"cannot read {redact_url(ref)} as a TIFF: {exc.strerror}") from None
        except ValueError as exc:
            self.close()
            if "range" in str(exc).lower():  # fsspec: the server sent the whole file
                raise no_range_support(ref) from None
            raise
        except BaseException:
            self.close()
            raise
        finally:
            tiff_logger.removeHandler(complaints)
            tiff_logger.setLevel(previous)
            tiff_logger.propagate = propagate
        if complaints.messages:
            said = "; ".join(complaints.messages[:2])
            said = f"{redact_url(ref)} looks damaged (tifffile: {said})"
            warnings.warn(f"{said}: read as found, metadata or levels may be missing", stacklevel=4)

    def close(self) -> None:
        if self._positional is not None:
            self._positional.close()
        if getattr(self, "tif", None) is not None:
            self.tif.close()
        if self._fileobj is not None:
            self._fileobj.close()


class OmeTiffSource(CachedHandleSource):
    """A TIFF pyramid (OME-TIFF, SVS, QPTIFF, plain tiled TIFF) as a minerva-dask source.

    Parameters
    ----------
    ref
        Local path, ``file://`` URL or any fsspec URL (``s3://``, ``https://``...).
    series
        Which TIFF series to open (default 0, the main image).
    series_levels
        Read the series that follow ``series`` as its pyramid levels when they make one
        (one series per level, see :mod:`._tiff_series`); ``False`` reads ``series`` alone.
    storage_options
        Passed to fsspec for remote URLs (credentials, endpoint, ``anon``...).
    """

    schemes = ("file", "s3", "http", "https", "gs", "az", "memory")
    suffixes = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".btf", ".svs", ".qptiff", ".ndpi")

    def __init__(
        self,
        ref: str | os.PathLike[str],
        *,
        series: int = 0,
        series_levels: bool = True,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.ref = os.fspath(ref)
        self.series = series
        self.series_levels = bool(series_levels)
        self.storage_options = dict(storage_options or {})
        exists_or_raise(self.ref, self.storage_options)
        self._info: ImageInfo | None = None
        self._axes = ""
        self._load_info()

    # -- pickling: arguments only, handles reopen lazily in the worker -----------------
    def __reduce__(self) -> tuple[Any, ...]:
        state = (self.ref, self.series, self.series_levels, self.storage_options)
        return (_rebuild, (*state, self._info, self._axes))

    @property
    def io_concurrency(self) -> int | None:
        """Reads to keep in flight: many for a remote file, to hide request latency."""
        return remote_concurrency(self.ref)

    def __repr__(self) -> str:
        return f"OmeTiffSource({redact_url(self.ref)!r}, series={self.series})"

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        """Its arguments and what the file is now (:func:`._fs.file_identity`): the same
        path rewritten is another image to a resumed export."""
        return (*self._handle_key(), file_identity(self.ref))

    def _handle_key(self) -> tuple[Any, ...]:
        options = repr(sorted(self.storage_options.items()))
        return ("tiff", self.ref, self.series, self.series_levels, options)

    def _open_handle(self) -> _Opened:
        def opened() -> _Opened:
            return _Opened(self.ref, self.storage_options, self.series, self.series_levels)

        if not is_url(self.ref):
            return opened()
        from ._http import open_with_retries  # remote: metadata reads retried as a whole

        return open_with_retries(self.ref, opened)

    # -- metadata --------------------------------------------------------------------
    def _load_info(self) -> None:
        opened = self._handle()
        series = opened.series
        axes = series.axes.upper()
        shape = tuple(series.shape)
        ome = _ome_image(opened.tif, self.series) if series.kind == "ome" else None
        if opened.tif.is_ome and series.kind != "ome":
            declared = _ome_image(opened.tif, self.series)
            what = (
                f"{declared.size_c} channels of {declared.size_x} x {declared.size_y}"
                if declared
                else "a different layout"
            )
            warnings.warn(
                f"{redact_url(self.ref)}: the OME-XML declares {what}, which the TIFF does not "
                f"hold; reading what the TIFF holds: axes {axes}, shape {shape}",
                stacklevel=3,
            )
            ome = None
        axes = _normalise_axes(axes, shape, self.ref)
        check_axes(axes)
        self._axes = axes
        size = dict(zip(axes, shape, strict=True))
        size_c = size.get("C", 1)
        levels = []
        width0, height0 = size["X"], size["Y"]
        for level_index, array in enumerate(opened.levels):
            lsize = dict(zip(axes, array.shape, strict=True))
            width, height = lsize["X"], lsize["Y"]
            keyframe = opened.level_series[level_index].keyframe
            tile_w, tile_h = _tile_size(keyframe, width, height)
            levels.append(
                LevelInfo(width, height, tile_w, tile_h, (width0 / width, height0 / height))
            )
        dtype = np.dtype(series.dtype)
        names = _channel_names(ome, size_c)
        colors = _channel_colors(ome, size_c, series.keyframe)
        window = default_window(dtype, ome.significant_bits if ome else None)
        channels = tuple(ChannelInfo(i, names[i], colors[i], window) for i in range(size_c))
        pixel_size = None
        if ome and ome.physical_size_um[0] and ome.physical_size_um[1]:
            pixel_size = (ome.physical_size_um[0], ome.physical_size_um[1])
        name = (ome.name if ome and ome.name else None) or os.path.basename(
            redact_url(self.ref) if is_url(self.ref) else local_path(self.ref)
        )
        self._info = ImageInfo(
            name=name,
            dtype=dtype,
            size_c=size_c,
            size_z=size.get("Z", 1),
            size_t=size.get("T", 1),
            levels=tuple(levels),
            channels=channels,
            pixel_size_um=pixel_size,
        )

    # -- pixels ----------------------------------------------------------------------
    def channels_per_read(self, level: int) -> int | None:
        """1 where each channel is its own tiled page (read alone at no extra cost)."""
        return 1 if isinstance(self._handle().levels[level], TiledPlanes) else None

    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray:
        """Raw pixels of ``rect`` (level pixels) as ``(c, y, x)`` in the image's dtype."""
        try:
            array = self._handle().levels[level]
            return read_block(array, self._axes, rect, channels, z, t)
        except (NoRangeSupportError, SourceNotFoundError, AuthError):
            raise  # about the whole file, not this tile: said as it is
        except Exception as exc:
            raise TileReadError(
                f"{redact_url(self.ref)}: reading level {level}, x={rect.x:g}, y={rect.y:g}, "
                f"{rect.width:g} x {rect.height:g} failed: {type(exc).__name__}: {exc}"
            ) from (None if is_url(self.ref) else exc)  # a remote cause may quote credentials


def _rebuild(
    ref: str,
    series: int,
    by_series: bool,
    storage_options: dict[str, Any],
    info: ImageInfo | None,
    axes: str,
) -> OmeTiffSource:
    source = OmeTiffSource.__new__(OmeTiffSource)
    source.ref, source.series, source.storage_options = ref, series, storage_options
    source.series_levels = by_series
    source._info, source._axes = info, axes
    return source


def _normalise_axes(axes: str, shape: tuple[int, ...], ref: str) -> str:
    """Map tifffile's axis letters onto T, C, Z, Y, X (samples or pages become channels)."""
    if "S" in axes and shape[axes.index("S")] > _MAX_PLAUSIBLE_SAMPLES and axes.endswith("YXS"):
        ny, nx, ns = shape[-3:]
        warnings.warn(
            f"{redact_url(ref)}: the TIFF declares {ns} samples per pixel on a {nx} x {ny} "
            f"image, which no colour image has; reading the same bytes as {ny} channels of "
            f"{ns} x {nx} pixels",
            stacklevel=4,
        )
        return axes[:-3] + "CYX"
    mapped = []
    channel_taken = "C" in axes
    for letter, size in zip(axes, shape, strict=True):
        if letter in "SIQ" and not channel_taken:
            mapped.append("C")
            channel_taken = True
        elif letter in "TCZYX":
            mapped.append(letter)
        elif size == 1:
            mapped.append("_")  # a unit axis: always read at index 0
        else:
            raise SourceError(
                f"{redact_url(ref)}: TIFF axes {axes} (shape {shape}) hold {letter} of size "
                f"{size} beside the channels; this layout is not supported"
            )
    return "".join(mapped)


def _tile_size(page: Any, width: int, height: int) -> tuple[int, int]:
    """The block a read should cover: the TIFF tile, or a full-width band of strips."""
    if page.is_tiled:
        return int(page.tilewidth), int(page.tilelength)
    rows_per_strip = max(1, min(int(page.rowsperstrip or height), height))
    rows = max(rows_per_strip, _STRIP_BLOCK_PIXELS // max(width, 1))
    rows -= rows % rows_per_strip
    return width, max(1, min(rows, height))


def _ome_image(tif: tifffile.TiffFile, series: int) -> OmeImage | None:
    try:
        images = parse_ome_images(tif.ome_metadata or "")
    except ValueError:
        return None
    return images[series] if series < len(images) else None


def _channel_names(ome: OmeImage | None, size_c: int) -> list[str]:
    names = [f"Channel {i}" for i in range(size_c)]
    if ome and len(ome.channels) == size_c:
        names = [c.name or names[i] for i, c in enumerate(ome.channels)]
    return names


def _channel_colors(ome: OmeImage | None, size_c: int, page: Any) -> list[tuple[float, ...]]:
    if page.photometric == tifffile.PHOTOMETRIC.RGB and size_c in (3, 4):
        return [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0), (1.0, 1.0, 1.0)][:size_c]
    colors = [default_channel_color(i, size_c) for i in range(size_c)]
    if ome and len(ome.channels) == size_c:
        # OME's default Color is -1 (white) on every channel; only trust distinct colours.
        given = [c.color for c in ome.channels]
        if all(given) and len(set(given)) > 1:
            colors = given  # type: ignore[assignment]
    return colors
