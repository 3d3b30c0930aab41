"""What a written image says about itself: name, pixel size, how it was made."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._inputs import inputs_of

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "ExportResult",
    "OutputMetadata",
    "band_grid",
    "check_grid",
    "regular_chunks",
    "rgb_grid",
]

# The channels of a rendered RGB image: label, colour.
RGB = (("Red", "FF0000"), ("Green", "00FF00"), ("Blue", "0000FF"))


@dataclass(frozen=True, slots=True)
class OutputMetadata:
    """Name, physical pixel size ``(x, y)`` in µm of level 0, provenance, and the
    locations (paths or URLs) read to make the image, which no output may replace.

    ``channels``: for a raw export, one ``(label, RRGGBB colour, (start, end) window)``
    per stored plane; empty for a rendered RGB image (its channels are Red, Green, Blue
    with windows 0..255)."""

    name: str = "rendered"
    pixel_size_um: tuple[float, float] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()
    channels: tuple[tuple[str, str, tuple[float, float]], ...] = ()
    dtype: str = "uint8"

    @classmethod
    def of(cls, image: Any) -> OutputMetadata:
        """From a :class:`~minerva_dask.Rendering` or a raw region (duck-typed), or
        defaults for arrays."""
        info = getattr(image, "image", None)
        if info is None:  # an array: a rendering's or raw region's keeps their inputs
            return cls(inputs=inputs_of(image))
        if hasattr(image, "provenance"):  # a RawRegion: the source's planes, unrendered
            return cls(
                name=f"{info.name} (raw)",
                pixel_size_um=image.pixel_size_um,
                provenance=image.provenance(),
                inputs=tuple(image.inputs),
                channels=tuple((c.name, c.color, c.window) for c in image.channels),
                dtype=str(image.dtype),
            )
        request = image.request
        return cls(
            name=f"{info.name} (rendered)",
            pixel_size_um=image.pixel_size_um,
            provenance={
                "software": "minerva-dask",
                "image": info.name,
                "request": request.to_url(),
                "level": image.level,
                "preset": image.preset,
                "gamma": image.gamma,
                "background": "#" + "".join(f"{v:02X}" for v in image.background),
            },
            inputs=inputs_of(image),
        )

    def omero_channels(self) -> list[dict[str, Any]]:
        """The NGFF ``omero`` block's channels: the raw planes' labels, colours and
        windows (min/max: the dtype's range), else Red, Green, Blue over 0..255."""
        if not self.channels:
            window = {"start": 0, "end": 255, "min": 0, "max": 255}
            return [
                {"label": label, "color": color, "active": True, "window": window}
                for label, color in RGB
            ]
        kind = np.dtype(self.dtype)
        limits = np.iinfo(kind) if kind.kind in "ui" else None
        out = []
        for label, color, (start, end) in self.channels:
            low = float(limits.min) if limits is not None else start
            high = float(limits.max) if limits is not None else end
            window = {"start": start, "end": end, "min": min(low, start), "max": max(high, end)}
            out.append({"label": label, "color": color, "active": True, "window": window})
        return out

    def ome_channels(self) -> dict[str, list[Any]]:
        """OME-XML ``Channel`` attributes for tifffile's ``metadata``: ``Name`` and
        ``Color`` (RGBA as a signed 32-bit integer) of each plane; ``{}`` for RGB."""
        if not self.channels:
            return {}
        colors = []
        for _, color, _ in self.channels:
            value = (int(color, 16) << 8) | 0xFF
            colors.append(value - (1 << 32) if value >= 1 << 31 else value)
        return {"Name": [label for label, _, _ in self.channels], "Color": colors}

    def description(self) -> str:
        """Provenance as one line of JSON (for OME Description and zarr attributes)."""
        return json.dumps(self.provenance, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class ExportResult:
    """What an export wrote: path, level-0 ``(height, width)``, levels, chunk counts."""

    path: str
    shape: tuple[int, int]
    levels: int
    chunks_written: int
    chunks_skipped: int
    size_bytes: int
    elapsed_s: float


def rgb_grid(image: Any, chunk: int | None = None, multiple: int = 2) -> tuple[da.Array, int]:
    """The ``(y, x, 3)`` uint8 dask array of a Rendering, dask or numpy array on a regular
    grid, and the grid's side in pixels.

    The side is ``chunk`` (default: the larger of the array's first chunk height and
    width), rounded up to a multiple of ``multiple`` (2 at least: 2 x 2 means then never
    straddle a chunk edge). Every chunk but the last of each axis is ``side`` pixels, the
    last at most ``side``, and the colour axis is one chunk of 3: the grid the writers
    store, so that each stored chunk is written by exactly one block.
    """
    import dask.array as da

    data = getattr(image, "data", image)
    if not isinstance(data, da.Array):
        data = np.asarray(data)
        side = chunk or 1024
        data = da.from_array(data, chunks=(side, side, 3))
    if data.ndim != 3 or data.shape[2] != 3 or data.dtype != np.uint8:
        raise ValueError(f"expected (height, width, 3) uint8, got {data.shape} {data.dtype}")
    side = chunk or max(data.chunks[0][0], data.chunks[1][0])
    multiple = max(2, multiple)
    side = -(-side // multiple) * multiple
    wanted = (regular_chunks(data.shape[0], side), regular_chunks(data.shape[1], side), (3,))
    if data.chunks != wanted:
        data = data.rechunk(wanted)
    check_grid(data.chunks[:2], side)
    return data, side


def band_grid(image: Any, chunk: int | None = None, multiple: int = 2) -> tuple[da.Array, int]:
    """A raw region's ``(c, y, x)`` planes as ``(y, x, c)`` of any dtype on the regular
    grid :func:`rgb_grid` makes for RGB (the channel axis one chunk), and its side."""
    data = image.data.transpose(1, 2, 0)
    side = chunk or max(data.chunks[0][0], data.chunks[1][0])
    multiple = max(2, multiple)
    side = -(-side // multiple) * multiple
    wanted = (
        regular_chunks(data.shape[0], side),
        regular_chunks(data.shape[1], side),
        (data.shape[2],),
    )
    if data.chunks != wanted:
        data = data.rechunk(wanted)
    check_grid(data.chunks[:2], side)
    return data, side


def regular_chunks(length: int, side: int) -> tuple[int, ...]:
    """Chunk sizes of ``length`` pixels cut every ``side``: ``side``s, then the rest.

    >>> regular_chunks(5, 2), regular_chunks(4, 8), regular_chunks(0, 8)
    ((2, 2, 1), (4,), (0,))
    """
    if length <= side:
        return (length,)
    full, rest = divmod(length, side)
    return (side,) * full + ((rest,) if rest else ())


def check_grid(chunks: tuple[tuple[int, ...], ...], side: int, what: str = "blocks") -> None:
    """Raise ``RuntimeError`` (a bug of ours, not of the user) unless ``chunks`` (sizes
    along each axis) cut every axis every ``side`` pixels: blocks that write a store of
    ``side``-pixel chunks must each cover whole stored chunks, or two tasks would
    read-modify-write one stored chunk at once and lose pixels."""
    for axis in chunks:
        if regular_chunks(sum(axis), side) != tuple(axis):
            raise RuntimeError(
                f"minerva-dask internal error: {what} {tuple(axis)} are not aligned with "
                f"stored chunks of {side} pixels"
            )
