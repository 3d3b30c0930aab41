"""What a written image says about itself: name, pixel size, how it was made."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["ExportResult", "OutputMetadata", "check_grid", "regular_chunks", "rgb_grid"]


@dataclass(frozen=True, slots=True)
class OutputMetadata:
    """Name, physical pixel size ``(x, y)`` in µm of level 0, provenance, and the
    locations (paths or URLs) read to make the image, which no output may replace."""

    name: str = "rendered"
    pixel_size_um: tuple[float, float] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()

    @classmethod
    def of(cls, image: Any) -> OutputMetadata:
        """From a :class:`~minerva_dask.Rendering` (duck-typed), or defaults for arrays."""
        info = getattr(image, "image", None)
        if info is None:
            return cls()
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
            inputs=tuple(getattr(image, "inputs", ())),
        )

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
