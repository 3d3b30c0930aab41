"""Z projections as OMERO's render URLs express them: ``p=intmax|START:END``.

``p=normal`` (or no ``p``) shows the plane ``z`` of the path. ``p=intmax``, ``p=intmean``
and ``p=intsum`` combine the focal planes ``START..END`` (0-based, **both included**; the
whole stack when no range is given) of every shown channel, pixel by pixel, before any
window is applied:

- ``intmax``: the largest value, in the source dtype (numpy's ``max`` over the planes).
  OMERO's projection starts its maximum at 0, so for signed data whose planes are all
  negative at a pixel OMERO gives 0 where we give the true maximum.
- ``intmean``: the mean, computed in float64 and **truncated toward zero** into the
  source dtype, as OMERO's projection stores its double mean into the pixel type (a
  Java cast). ``np.mean(planes, axis=0).astype(dtype)`` is the same number. Float data
  keep the mean as it is. (OMERO's own loop for mean and sum stops before END; the URL
  grammar and OMERO.figure say END is included, and we include it.)
- ``intsum``: the sum in float64, clipped to the dtype's range (OMERO clips at the
  type's maximum), then cast.

The projection is computed where the pixels are read, tile by tile and plane by plane
(one plane and an accumulator in memory), so it stays lazy on every file source. OMERO
servers project themselves only behind omero-ms-image-region; plain OMERO.web ignores
``p`` on tiles, and a projection is refused there rather than silently shown unprojected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import RequestError

if TYPE_CHECKING:  # numpy is imported when pixels are projected, not with the request
    import numpy as np

__all__ = ["KINDS", "Projection", "parse_projection", "project_planes"]

KINDS = ("intmax", "intmean", "intsum")


@dataclass(frozen=True, slots=True)
class Projection:
    """A z projection: ``kind`` over planes ``start..end`` (0-based, inclusive; ``end``
    ``None``: the last plane of the image)."""

    kind: str
    start: int = 0
    end: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise RequestError(f"projection {self.kind!r} is not one of normal, {', '.join(KINDS)}")
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is None and name == "end":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise RequestError(f"projection {name} must be an integer >= 0, got {value!r}")
        if self.end is not None and self.end < self.start:
            raise RequestError(
                f"projection range {self.start}:{self.end} is empty: END must be >= START"
            )

    def planes(self, size_z: int) -> range:
        """The z planes projected on an image of ``size_z`` planes (checked)."""
        end = size_z - 1 if self.end is None else self.end
        if end >= size_z:
            raise RequestError(
                f"p={self.to_param()} reaches z={end}, but the image has {size_z} z-plane"
                f"{'s' if size_z != 1 else ''} (0..{size_z - 1})"
            )
        return range(self.start, end + 1)

    def to_param(self) -> str:
        """The URL's ``p`` value: ``intmax|0:4`` (``intmax`` for the whole stack)."""
        if self.end is None and self.start == 0:
            return self.kind
        end = "" if self.end is None else str(self.end)
        return f"{self.kind}|{self.start}:{end}"


def parse_projection(text: str) -> Projection | None:
    """``p``'s value: ``None`` for ``normal`` (or empty), else a :class:`Projection`.

    >>> parse_projection("intmax|1:3")
    Projection(kind='intmax', start=1, end=3)
    >>> parse_projection("normal") is None, parse_projection("intmean")
    (True, Projection(kind='intmean', start=0, end=None))
    """
    kind, bar, span = text.partition("|")
    if kind in ("", "normal"):
        if span:
            raise RequestError(f"p={text}: normal takes no plane range")
        return None
    if kind not in KINDS:
        raise RequestError(
            f"p={text}: projection {kind!r} is not one of normal, {', '.join(KINDS)}"
        )
    if not bar:
        return Projection(kind)
    start, colon, end = span.partition(":")
    if not colon or not start.isdigit() or not (end.isdigit() or end == ""):
        raise RequestError(f"p={text}: the plane range must be START:END, 0-based integers")
    return Projection(kind, int(start), int(end) if end else None)


def project_planes(
    read: Callable[[int], np.ndarray], planes: range, kind: str, dtype: Any
) -> np.ndarray:
    """Combine ``read(z)`` for every ``z`` in ``planes`` (see the module docstring), one
    plane at a time; the result has the plane's shape and ``dtype``."""
    import numpy as np

    dtype = np.dtype(dtype)
    if kind == "intmax":
        out = None
        for z in planes:
            plane = read(z)
            out = (
                np.array(plane, dtype=dtype, copy=True)
                if out is None
                else np.maximum(out, plane, out=out)
            )
        assert out is not None
        return out
    total = None
    for z in planes:
        plane = np.asarray(read(z), dtype=np.float64)
        total = plane.copy() if total is None else np.add(total, plane, out=total)
    assert total is not None
    if kind == "intmean":
        total /= len(planes)
        if dtype.kind in "ui":
            np.trunc(total, out=total)
    if dtype.kind in "ui":
        limits = np.iinfo(dtype)
        np.clip(total, limits.min, limits.max, out=total)
    return total.astype(dtype)
