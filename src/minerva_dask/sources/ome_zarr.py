"""OME-Zarr (OME-NGFF 0.1-0.5, zarr v2 and v3) through zarr-python 3.

Multiscales with any axis order of ``t, c, z, y, x``, nested dataset paths, scale factors
that are not powers of two, the ``omero`` block for channel names, colours and windows,
and the bioformats2raw layout (series groups ``0``, ``1``... under the root). Local paths
and fsspec URLs (``s3://``, ``https://``) alike.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import zarr

from ..colors import parse_color
from ..errors import AuthError, SourceError, SourceNotFoundError, TileReadError
from ..geometry import Rect
from ._axes import block_selection, check_axes, read_block
from ._fs import file_identity, is_url, local_path, redact_url, remote_concurrency
from ._ngff import check_array, check_multiscale, dataset_scale
from ._ranges import NoRangeSupportError
from ._zarr_checks import checked, chunk_keys
from .base import (
    CachedHandleSource,
    ChannelInfo,
    ImageInfo,
    LevelInfo,
    default_channel_color,
    default_window,
)

__all__ = ["OmeZarrSource"]

_DEFAULT_AXES = {2: "YX", 3: "CYX", 4: "CZYX", 5: "TCZYX"}  # NGFF < 0.4 implies TCZYX


def _open_group(ref: str, storage_options: dict[str, Any]) -> zarr.Group:
    try:
        if is_url(ref):
            from ._zarr_store import open_remote_store

            return zarr.open_group(open_remote_store(ref, storage_options), mode="r")
        path = local_path(ref)
        if not os.path.exists(path):
            raise SourceNotFoundError(f"no such file or directory: {path}")
        return zarr.open_group(path, mode="r")
    except SourceNotFoundError:
        raise
    except (FileNotFoundError, zarr.errors.GroupNotFoundError) as exc:
        raise SourceNotFoundError(f"no zarr group at {redact_url(ref)}: {exc}") from None
    except (OSError, ValueError, TypeError, KeyError) as exc:  # its metadata is malformed
        raise SourceError(f"cannot open {redact_url(ref)} as zarr: {exc}") from None


def _ome_attrs(group: zarr.Group) -> dict[str, Any]:
    attrs = dict(group.attrs)
    return dict(attrs["ome"]) if isinstance(attrs.get("ome"), dict) else attrs


class _Opened:
    def __init__(self, ref: str, storage_options: dict[str, Any], series: int | None) -> None:
        group = _open_group(ref, storage_options)
        attrs = _ome_attrs(group)
        if "multiscales" not in attrs and "bioformats2raw.layout" in attrs:
            key = str(series or 0)
            if key not in group:
                raise SourceError(f"{redact_url(ref)} has no series group {key!r}")
            group = group[key]
            attrs = _ome_attrs(group)
        elif series not in (None, 0):
            raise SourceError(
                f"{redact_url(ref)} is a single image; series={series} does not exist"
            )
        if "multiscales" not in attrs or not attrs["multiscales"]:
            raise SourceError(
                f"{redact_url(ref)} is a zarr group without OME-NGFF 'multiscales' metadata"
            )
        try:
            self.multiscale, paths = check_multiscale(attrs)
        except ValueError as exc:
            raise SourceError(f"{redact_url(ref)}: bad OME-NGFF metadata: {exc}") from None
        omero = attrs.get("omero")
        self.omero = omero if isinstance(omero, dict) else {}
        self.arrays = []
        for index, path in enumerate(paths):
            try:
                array = group[path]
            except KeyError:
                raise SourceError(
                    f"{redact_url(ref)}: multiscales dataset {path!r} is missing"
                ) from None
            except (ValueError, TypeError) as exc:  # metadata zarr cannot read
                first_line = (str(exc).splitlines() or [""])[0]
                raise SourceError(
                    f"{redact_url(ref)}: multiscales dataset {path!r} cannot be opened: "
                    f"{type(exc).__name__}: {first_line}"
                ) from None
            if not isinstance(array, zarr.Array):
                raise SourceError(
                    f"{redact_url(ref)}: multiscales dataset {path!r} is a group, not an array"
                )
            try:
                check_array(array, index, path, self.arrays[0] if self.arrays else array)
            except ValueError as exc:
                raise SourceError(f"{redact_url(ref)}: bad OME-NGFF metadata: {exc}") from None
            # Blosc chunks checked for length: a cut one does not decode silently
            self.arrays.append(checked(array))

    def close(self) -> None:
        self.arrays = []


class OmeZarrSource(CachedHandleSource):
    """An OME-Zarr multiscale image as a minerva-dask source.

    Parameters
    ----------
    ref
        Local path, ``file://`` URL or fsspec URL of the zarr group holding ``multiscales``
        (or of a bioformats2raw root).
    series
        Series to open in a bioformats2raw layout (default 0).
    storage_options
        Passed to fsspec for remote URLs.
    """

    schemes = ("file", "s3", "http", "https", "gs", "az", "memory")
    suffixes = (".ome.zarr", ".zarr")

    def __init__(
        self,
        ref: str | os.PathLike[str],
        *,
        series: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.ref = os.fspath(ref).rstrip("/")
        self.series = series
        self.storage_options = dict(storage_options or {})
        self._info: ImageInfo | None = None
        self._axes = ""
        self._load_info()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.ref, self.series, self.storage_options, self._info, self._axes))

    @property
    def io_concurrency(self) -> int | None:
        """Reads to keep in flight: many for a remote store, to hide request latency."""
        return remote_concurrency(self.ref)

    def __repr__(self) -> str:
        return f"OmeZarrSource({redact_url(self.ref)!r})"

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        """Its arguments and what the file is now (:func:`._fs.file_identity`): the same
        path rewritten is another image to a resumed export."""
        return (*self._handle_key(), file_identity(self.ref))

    def _handle_key(self) -> tuple[Any, ...]:
        return ("zarr", self.ref, self.series, repr(sorted(self.storage_options.items())))

    def _open_handle(self) -> _Opened:
        if not is_url(self.ref):
            return _Opened(self.ref, self.storage_options, self.series)
        from ._http import open_with_retries  # remote: metadata reads retried as a whole

        return open_with_retries(
            self.ref, lambda: _Opened(self.ref, self.storage_options, self.series)
        )

    def _load_info(self) -> None:
        opened = self._handle()
        first = opened.arrays[0]
        axes_meta = opened.multiscale.get("axes")
        if axes_meta:
            names = [a["name"] if isinstance(a, dict) else str(a) for a in axes_meta]
        else:
            names = list(_DEFAULT_AXES.get(first.ndim, ""))
        axes = "".join(n.upper() for n in names)
        try:
            check_axes(axes)
        except ValueError as exc:
            raise SourceError(f"{redact_url(self.ref)}: {exc}") from None
        if len(axes) != first.ndim:
            raise SourceError(
                f"{redact_url(self.ref)}: {len(axes)} axes for a {first.ndim}-d array"
            )
        self._axes = axes
        x_dim, y_dim = axes.index("X"), axes.index("Y")
        try:
            scales = [
                dataset_scale(d, first.ndim, i) for i, d in enumerate(opened.multiscale["datasets"])
            ]
        except ValueError as exc:
            raise SourceError(f"{redact_url(self.ref)}: bad OME-NGFF metadata: {exc}") from None
        levels = []
        for i, array in enumerate(opened.arrays):
            width, height = array.shape[x_dim], array.shape[y_dim]
            block = array.shards or array.chunks
            if scales[0] and scales[i]:
                downsample = (
                    scales[i][x_dim] / scales[0][x_dim],
                    scales[i][y_dim] / scales[0][y_dim],
                )
            else:
                downsample = (first.shape[x_dim] / width, first.shape[y_dim] / height)
            levels.append(
                LevelInfo(
                    width, height, min(block[x_dim], width), min(block[y_dim], height), downsample
                )
            )
        size = dict(zip(axes, first.shape, strict=True))
        size_c = size.get("C", 1)
        dtype = np.dtype(first.dtype)
        self._info = ImageInfo(
            name=image_name(
                opened.multiscale.get("name"),
                redact_url(self.ref) if is_url(self.ref) else local_path(self.ref),
            ),
            dtype=dtype,
            size_c=size_c,
            size_z=size.get("Z", 1),
            size_t=size.get("T", 1),
            levels=tuple(levels),
            channels=_channels(opened.omero, size_c, dtype),
            pixel_size_um=_pixel_size_um(opened.multiscale, scales[0], x_dim, y_dim),
        )

    def channels_per_read(self, level: int) -> int | None:
        """The level's chunk size along C: the channels one stored chunk holds."""
        if "C" not in self._axes:
            return None
        return int(self._handle().arrays[level].chunks[self._axes.index("C")])

    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray:
        """Raw pixels of ``rect`` (level pixels) as ``(c, y, x)`` in the image's dtype."""
        array = None
        try:
            array = self._handle().arrays[level]
            return read_block(array, self._axes, rect, channels, z, t)
        except (NoRangeSupportError, SourceNotFoundError, AuthError):
            raise  # about the whole file, not this tile: said as it is
        except Exception as exc:
            chunks = _chunk_names(array, self._axes, rect, channels, z, t)
            raise TileReadError(
                f"{redact_url(self.ref)}: reading level {level}, x={rect.x:g}, y={rect.y:g}, "
                f"{rect.width:g} x {rect.height:g}{chunks} failed: {type(exc).__name__}: {exc}"
            ) from (None if is_url(self.ref) else exc)  # a remote cause may quote credentials


def image_name(multiscale_name: Any, ref: str) -> str:
    """A name for a person: the multiscale's name, or its last part when it is a path
    (``"/images/blobs_image"``: ``blobs_image``); where that is empty or ``"/"``, the
    store's own name without ``.ome.zarr`` / ``.zarr``.

    >>> image_name("/images/blobs_image", "data/blobs.ome.zarr")
    'blobs_image'
    >>> image_name("/", "s3://lab/slide-3.ome.zarr/"), image_name(None, "arange.zarr")
    ('slide-3', 'arange')
    """
    name = "" if multiscale_name is None else str(multiscale_name).strip()
    name = name.rstrip("/").rpartition("/")[2]
    if name:
        return name
    store = os.path.basename(ref.split("?", 1)[0].rstrip("/"))
    for suffix in (".ome.zarr", ".zarr"):
        if store.lower().endswith(suffix) and len(store) > len(suffix):
            return store[: -len(suffix)]
    return store or "image"


def _chunk_names(array: Any, axes: str, rect: Rect, channels: Sequence[int], z: int, t: int) -> str:
    """``" (chunk 0/1/0)"``: the store keys of the chunks or shards a read touches."""
    try:
        keys = chunk_keys(array, block_selection(axes, rect, channels, z, t)[0])
    except Exception:  # naming the chunk must not hide the error itself
        return ""
    shown = ", ".join(keys[:4]) + (f" and {len(keys) - 4} more" if len(keys) > 4 else "")
    return f" (chunk{'s' if len(keys) > 1 else ''} {shown})"


def _rebuild(
    ref: str, series: int | None, storage_options: dict[str, Any], info: ImageInfo | None, axes: str
) -> OmeZarrSource:
    source = OmeZarrSource.__new__(OmeZarrSource)
    source.ref, source.series, source.storage_options = ref, series, storage_options
    source._info, source._axes = info, axes
    return source


_UNIT_TO_UM = {
    "micrometer": 1.0,
    "nanometer": 1e-3,
    "millimeter": 1e3,
    "meter": 1e6,
    "angstrom": 1e-4,
    "centimeter": 1e4,
}


def _pixel_size_um(
    multiscale: dict[str, Any], scale: list[float] | None, x_dim: int, y_dim: int
) -> tuple[float, float] | None:
    axes = multiscale.get("axes") or []
    if not scale or len(axes) <= max(x_dim, y_dim):
        return None
    if not (isinstance(axes[x_dim], dict) and isinstance(axes[y_dim], dict)):
        return None
    units = [axes[d].get("unit", "") for d in (x_dim, y_dim)]
    factors = [_UNIT_TO_UM.get(u) if isinstance(u, str) else None for u in units]
    if None in factors:
        return None
    return (scale[x_dim] * factors[0], scale[y_dim] * factors[1])  # type: ignore[operator]


def _channels(omero: dict[str, Any], size_c: int, dtype: np.dtype) -> tuple[ChannelInfo, ...]:
    described = omero.get("channels")
    described = described if isinstance(described, list) else []
    out = []
    for i in range(size_c):
        meta = described[i] if i < len(described) and isinstance(described[i], dict) else {}
        label = meta.get("label")
        name = str(label) if label not in (None, "") else f"Channel {i}"
        color = default_channel_color(i, size_c)
        if isinstance(meta.get("color"), str):
            with contextlib.suppress(ValueError):
                color = parse_color(meta["color"])[0]
        window = default_window(dtype)
        win = meta.get("window") if isinstance(meta.get("window"), dict) else {}
        start, end = win.get("start"), win.get("end")
        if isinstance(start, int | float) and isinstance(end, int | float) and start <= end:
            window = (float(start), float(end))
        out.append(ChannelInfo(i, name, color, window, bool(meta.get("active", True))))
    return tuple(out)
