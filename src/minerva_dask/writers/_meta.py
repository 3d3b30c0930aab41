"""What a written image says about itself: name, pixel size, how it was made."""

from __future__ import annotations

import json
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .._inputs import inputs_of
from ..errors import BlockMismatchError, OutputError

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "MAX_CHUNK_SIDE",
    "ExportResult",
    "OutputMetadata",
    "band_grid",
    "check_block",
    "check_chunk",
    "check_grid",
    "check_pixels",
    "checked_blocks",
    "chunk_side_problem",
    "regular_chunks",
    "rgb_grid",
]

MAX_CHUNK_SIDE = 2**14  # 805 MB of RGB a chunk; 10**9 was an unexpected MemoryError
# Pixels an output may have: a render's own budget (plan.MAX_PIXELS, pinned equal by a
# test), kept for arrays handed to a writer too (a 10^14-px array ran away in memory).
MAX_OUTPUT_PIXELS = 2**40


def chunk_side_problem(side: Any) -> str | None:
    """What is wrong with ``side`` as a chunk (block) side, or ``None``: the one rule of
    the renderer and the writers, a whole number of pixels within 1..MAX_CHUNK_SIDE (one
    chunk is held whole in memory).

    >>> chunk_side_problem(512), chunk_side_problem(-5)
    (None, 'must be a whole number within 1..16384 pixels, got -5')
    """
    whole = isinstance(side, numbers.Integral) and not isinstance(side, bool)
    if not whole or not 1 <= side <= MAX_CHUNK_SIDE:
        return f"must be a whole number within 1..{MAX_CHUNK_SIDE} pixels, got {side!r}"
    return None


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


def rgb_grid(
    image: Any, chunk: int | None = None, multiple: int = 2, *, target: Any = "the output"
) -> tuple[da.Array, int]:
    """The ``(y, x, 3)`` uint8 dask array of a Rendering, dask or numpy array on a regular
    grid, and the grid's side in pixels.

    The side is ``chunk`` (default: the larger of the array's first chunk height and
    width), rounded up to a multiple of ``multiple`` (2 at least: 2 x 2 means then never
    straddle a chunk edge). Every chunk but the last of each axis is ``side`` pixels, the
    last at most ``side``, and the colour axis is one chunk of 3: the grid the writers
    store, so that each stored chunk is written by exactly one block. What no writer can
    store (see :func:`check_pixels`, :func:`check_chunk`) is refused naming ``target``.
    """
    import dask.array as da

    check_chunk(chunk, target)
    data = getattr(image, "data", image)
    if not isinstance(data, da.Array):
        data = np.asarray(data)
    check_pixels(data.shape, data.dtype, target)
    if not isinstance(data, da.Array):
        side = chunk or 1024
        data = da.from_array(data, chunks=(side, side, 3))
    elif data is image:  # someone's dask array: each block checked before it is joined
        data = checked_blocks(data)
    return _on_grid(data, chunk, multiple, (0, 1))


def band_grid(
    image: Any, chunk: int | None = None, multiple: int = 2, *, target: Any = "the output"
) -> tuple[da.Array, int]:
    """A raw region's ``(c, y, x)`` planes as ``(y, x, c)`` of any dtype on the regular
    grid :func:`rgb_grid` makes for RGB (the channel axis one chunk), and its side."""
    check_chunk(chunk, target)
    check_pixels(image.data.shape, image.data.dtype, target, "bands")
    return _on_grid(image.data.transpose(1, 2, 0), chunk, multiple, (0, 1))


def _on_grid(
    data: da.Array, chunk: int | None, multiple: int, axes: tuple[int, int]
) -> tuple[da.Array, int]:
    """``data`` rechunked to ``side``-pixel blocks along ``axes`` (the others one chunk)."""
    first = [data.chunks[axis][0] for axis in axes]
    side = chunk or max(first)
    multiple = max(2, multiple)
    side = -(-side // multiple) * multiple
    wanted = tuple(
        regular_chunks(length, side) if axis in axes else (length,)
        for axis, length in enumerate(data.shape)
    )
    if data.chunks != wanted:
        data = data.rechunk(wanted)
    check_grid(tuple(data.chunks[axis] for axis in axes), side)
    return data, side


# What each writer stores, as its refusal names it.
_LAYOUTS = {
    "rgb": "(height, width, 3) uint8",
    "png": "(height, width[, 1-4 samples]) uint8",
    "planes": "(channels, height, width) unsigned integer",
    "bands": "(channels, height, width)",
}


def check_pixels(shape: tuple[Any, ...], dtype: Any, target: Any, layout: str = "rgb") -> None:
    """Refuse, before anything is written, an image no writer of ``layout`` can store: of
    unknown shape (a dask array after boolean indexing), of the wrong axes or pixel type
    (see :data:`_LAYOUTS`), or empty. One :class:`~minerva_dask.errors.OutputError`
    line naming ``target``.

    >>> check_pixels((0, 5, 3), np.uint8, "a.png")
    Traceback (most recent call last):
    minerva_dask.errors.OutputError: cannot write a.png: the image is empty (5 x 0 ...
    """
    shape, dtype = tuple(shape), np.dtype(dtype)
    shown = "(" + ", ".join(str(n) for n in shape) + ")"
    if not all(isinstance(n, int | np.integer) for n in shape):  # dask's NaN: not known
        raise OutputError(
            f"cannot write {target}: the image's shape {shown} is not known (a dask array "
            "whose chunk sizes are unknown, as after boolean indexing): call "
            ".compute_chunk_sizes() on it first"
        )
    if layout == "png":
        fits = dtype == np.uint8 and (len(shape) == 2 or (len(shape) == 3 and 1 <= shape[2] <= 4))
    elif layout == "rgb":
        fits = dtype == np.uint8 and len(shape) == 3 and shape[2] == 3
    else:
        fits = len(shape) == 3 and (layout == "bands" or dtype.kind == "u")
    if not fits:
        raise OutputError(
            f"cannot write {target}: expected {_LAYOUTS[layout]} pixels, got {shown} {dtype}"
        )
    height, width = shape[1:3] if layout in ("planes", "bands") else shape[:2]
    if min(shape) == 0:
        raise OutputError(
            f"cannot write {target}: the image is empty ({width} x {height} pixels"
            f"{f' x {shape[0]} channels' if layout in ('planes', 'bands') else ''}); "
            "nothing to write"
        )
    if height * width > MAX_OUTPUT_PIXELS:
        raise OutputError(
            f"cannot write {target}: {width} x {height} pixels is more than the "
            f"{MAX_OUTPUT_PIXELS:,} (2^40) an output may have"
        )


def check_chunk(chunk: Any, target: Any, name: str = "chunk") -> None:
    """Refuse a block side that is not a whole number of pixels within the renderer's
    range (:func:`chunk_side_problem`, the one rule); ``None``: the
    image's own."""
    if chunk is None:
        return
    problem = chunk_side_problem(chunk)
    if problem:
        raise OutputError(f"cannot write {target}: {name} {problem}")


def checked_blocks(data: da.Array) -> da.Array:
    """``data`` whose every block is checked, as it is computed, against its declared
    shape and dtype (:func:`check_block`): for a writer whose tasks take windows of
    several blocks, not one block each."""
    return data.map_blocks(_check_located, dtype=data.dtype, meta=data._meta)


def _check_located(block: Any, block_info: dict[Any, Any] | None = None) -> np.ndarray:
    out = (block_info or {}).get(None)
    if out is None:  # dask's meta probe
        return block
    where = f"block {tuple(out['chunk-location'][:2])}"
    return check_block(block, where, tuple(out["chunk-shape"]), out["dtype"])


def check_block(block: Any, where: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``block`` as computed (on a worker), if it is what its array declared: ``shape``
    and ``dtype``; else a :class:`~minerva_dask.errors.BlockMismatchError` (it pickles) naming
    it, e.g. ``block (0, 1) computed as uint16 (50, 50, 3), declared uint8 (50, 50, 3)``.
    A writer never stores a block that is not what the image said it would be."""
    block = np.asarray(block)
    dtype = np.dtype(dtype)
    if block.dtype != dtype or block.shape != tuple(shape):
        raise BlockMismatchError(
            f"{where} computed as {block.dtype} {block.shape}, declared {dtype} "
            f"{tuple(shape)}: the dask array's dtype or chunks do not match what its "
            "blocks compute (map_blocks(..., dtype=, chunks=)?)"
        )
    return block


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
