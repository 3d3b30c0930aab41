"""What a written image says about itself: name, pixel size, how it was made."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["ExportResult", "OutputMetadata", "as_rgb_dask"]


@dataclass(frozen=True, slots=True)
class OutputMetadata:
    """Name, physical pixel size ``(x, y)`` in µm of level 0, and provenance."""

    name: str = "rendered"
    pixel_size_um: tuple[float, float] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

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


def as_rgb_dask(image: Any, chunk: int | None = None) -> da.Array:
    """The ``(y, x, 3)`` uint8 dask array of a Rendering, dask or numpy array, with
    regular chunks (``chunk`` pixels, default the array's first chunk) and one chunk of 3."""
    import dask.array as da

    data = getattr(image, "data", image)
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(chunk or 1024, chunk or 1024, 3))
    if data.ndim != 3 or data.shape[2] != 3 or data.dtype != np.uint8:
        raise ValueError(f"expected (height, width, 3) uint8, got {data.shape} {data.dtype}")
    side = chunk or max(data.chunks[0][0], data.chunks[1][0])
    side += side % 2  # even chunks: 2 x 2 means never straddle a chunk edge
    if (
        any(c != side for c in data.chunks[0][:-1] + data.chunks[1][:-1])
        or len(data.chunks[2]) != 1
        or data.chunks[0][0] != side
        or data.chunks[1][0] != side
    ):
        data = data.rechunk((side, side, 3))
    return data
