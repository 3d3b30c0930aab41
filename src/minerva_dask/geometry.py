"""Pyramid geometry: rectangles, level choice, region scaling and the output chunk grid.

Conventions used everywhere in minerva-dask:

* ``x`` grows to the right, ``y`` grows down; sizes are ``width`` and ``height``.
* Arrays are indexed ``[..., y, x]`` (row, then column).
* Pyramid ``level`` 0 is full resolution; level ``l`` has a downsampling factor
  ``(fx, fy)`` >= 1 per axis relative to level 0.
* Unless a name says otherwise the unit is the pixel of the level in question.

Everything here is pure: no I/O, no dask.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Rect",
    "TileGrid",
    "TilePiece",
    "choose_level",
    "choose_level_omero_figure",
    "choose_reduction",
    "floor_tolerant",
    "minerva_level_sizes",
    "plan_tile_grid",
    "region_at_level",
    "split_edges",
    "tile_pieces",
]

# Level factors read from metadata are often ratios such as 250 / 62; x / f then lands a
# hair below an integer (61.99999999999999). Values within this distance of an integer are
# taken to be that integer before flooring.
_INTEGER_TOLERANCE = 1e-6
MINERVA_TILE_SIZE = 1024  # Minerva's tiles (bfextractor), and its pyramid's stopping size


@dataclass(frozen=True, slots=True)
class Rect:
    """An axis-aligned rectangle: origin ``(x, y)`` (top-left) and ``width`` x ``height``.

    Units are pixels of whatever grid the rectangle lives in (full resolution for a
    request's region, level pixels after :func:`region_at_level`). Floats are allowed for
    requests; level rectangles are integers.
    """

    x: float
    y: float
    width: float
    height: float

    @property
    def right(self) -> float:
        """``x + width``: one past the last column."""
        return self.x + self.width

    @property
    def bottom(self) -> float:
        """``y + height``: one past the last row."""
        return self.y + self.height

    def intersection(self, other: Rect) -> Rect | None:
        """The overlap of two rectangles, or ``None`` when they do not overlap.

        >>> Rect(-5, -5, 10, 10).intersection(Rect(0, 0, 100, 100))
        Rect(x=0, y=0, width=5, height=5)
        """
        x0, y0 = max(self.x, other.x), max(self.y, other.y)
        x1, y1 = min(self.right, other.right), min(self.bottom, other.bottom)
        if x1 <= x0 or y1 <= y0:
            return None
        return Rect(x0, y0, x1 - x0, y1 - y0)


def floor_tolerant(value: float) -> int:
    """``floor(value)``, treating values within 1e-6 of an integer as that integer.

    >>> floor_tolerant(250 / (250 / 62)), floor_tolerant(-0.5), floor_tolerant(2.9)
    (62, -1, 2)
    """
    nearest = round(value)
    if abs(value - nearest) <= _INTEGER_TOLERANCE:
        return int(nearest)
    return math.floor(value)


def choose_level(
    downsamples: Sequence[tuple[float, float]], width: float, height: float, max_size: int
) -> int:
    """The pyramid level to render a ``width`` x ``height`` full-resolution region at.

    The general rule of ``rendering.md`` section 2: the finest level whose scaled longest
    side ``max(width / fx, height / fy)`` is <= ``max_size``; if none is, the coarsest.
    For power-of-two pyramids this equals the 2018 rule
    ``clip(ceil(log2(max(w, h) / max_size)), 0, L - 1)``. Never upsamples. When even the
    coarsest level is too big, :func:`choose_reduction` says by how much to reduce it
    further, so that the output keeps ``max_size``.

    Parameters
    ----------
    downsamples
        ``(fx, fy)`` per level, level 0 first (``(1, 1)``).
    width, height
        Region size in full-resolution pixels.
    max_size
        Largest output side wanted, in output pixels.

    >>> choose_level([(1, 1), (2, 2), (4, 4)], 4000, 1000, 1000)
    2
    >>> choose_level([(1, 1), (2, 2), (4, 4)], 4000, 1000, 10)
    2
    >>> choose_level([(1, 1), (2, 2)], 1000, 1000, 1000)
    0
    """
    for level, (fx, fy) in enumerate(downsamples):
        if max(width / fx, height / fy) <= max_size * (1 + 1e-12):
            return level
    return len(downsamples) - 1


def choose_reduction(
    downsample: tuple[float, float], width: float, height: float, max_size: int
) -> int:
    """The smallest integer ``k >= 1`` that brings a region within ``max_size`` at a level.

    When no pyramid level is small enough (a flat image, a region far larger than the
    image), the general rule reduces the chosen level ``l`` further on the fly: a *virtual
    level* whose pixel ``(i, j)`` is the mean of the ``k x k`` block of level pixels
    ``[i k, (i + 1) k) x [j k, (j + 1) k)`` that lie inside the level (edge blocks average
    what exists), downsample ``(fx k, fy k)``, size ``ceil(W_l / k) x ceil(H_l / k)``.
    ``k`` is the smallest integer with ``max(width / (fx k), height / (fy k)) <= max_size``;
    the region then maps onto the virtual level with the usual truncation rule. Pure
    arithmetic: its cost does not depend on the sizes.

    >>> choose_reduction((1, 1), 4096, 4096, 512), choose_reduction((1, 1), 500, 20, 512)
    (8, 1)
    >>> choose_reduction((4, 4), 1e12, 1e12, 100)
    2500000000
    """
    fx, fy = downsample
    longest = max(width / fx, height / fy)
    tolerance = 1 + 1e-12  # as choose_level
    if longest <= max_size * tolerance:
        return 1
    k = max(1, math.ceil(longest / max_size))
    while k > 1 and longest / (k - 1) <= max_size * tolerance:
        k -= 1
    while longest / k > max_size * tolerance:
        k += 1
    return k


def choose_level_omero_figure(
    downsamples: Sequence[tuple[float, float]], width: float, height: float, max_size: int
) -> int:
    """The level OMERO.figure's ``render_scaled_region`` picks (``api-contract.md`` 3).

    Start at the smallest level and move to finer ones while the next finer level's
    scaled longest side is strictly below ``max_size``. The output may exceed ``max_size``
    (omero-figure#449).

    >>> choose_level_omero_figure([(1, 1), (2, 2), (4, 4), (8, 8), (16, 16)], 48960, 48960, 2000)
    4
    """
    longest = max(width, height)
    level = len(downsamples) - 1
    while level > 0 and longest / downsamples[level - 1][0] < max_size:
        level -= 1
    return level


def region_at_level(
    region: Rect, downsample: tuple[float, float], *, toward_zero: bool = False
) -> Rect:
    """Scale a full-resolution region to a level by truncation (2018 script, OMERO.figure).

    Origin ``floor(x / fx)``, size ``floor(width / fx)`` (likewise y), with the size kept at
    least 1 pixel so that a tiny region still renders something. ``toward_zero`` truncates
    a negative origin toward zero instead, as OMERO.figure's ``int()`` does. Returns
    integer pixels of the level; the result may extend beyond the level.

    >>> region_at_level(Rect(-2000, -1000, 40000, 40000), (4, 4))
    Rect(x=-500, y=-250, width=10000, height=10000)
    >>> region_at_level(Rect(-5, 0, 8, 8), (4, 4)), region_at_level(Rect(-5, 0, 8, 8), (4, 4),
    ...                                                             toward_zero=True)
    (Rect(x=-2, y=0, width=2, height=2), Rect(x=-1, y=0, width=2, height=2))
    """
    fx, fy = downsample

    def origin(value: float) -> int:
        if toward_zero and value < 0:
            return -floor_tolerant(-value)
        return floor_tolerant(value)

    return Rect(
        origin(region.x / fx),
        origin(region.y / fy),
        max(1, floor_tolerant(region.width / fx)),
        max(1, floor_tolerant(region.height / fy)),
    )


def split_edges(start: int, size: int, tile: int, extent: int) -> tuple[int, ...]:
    """Boundaries that cut ``[start, start + size)`` into chunks along one axis.

    Cuts fall on multiples of ``tile`` and on the image edges ``0`` and ``extent``, so every
    chunk lies inside one source tile or entirely outside the image, and no chunk is longer
    than ``tile``. Returned as absolute level coordinates, first ``start``, last
    ``start + size``.

    >>> split_edges(-300, 1500, 512, 900)
    (-300, 0, 512, 900, 1024, 1200)
    """
    if size < 1 or tile < 1:
        raise ValueError(f"size and tile must be >= 1, got size={size}, tile={tile}")
    stop = start + size
    cuts = set(range((start // tile + 1) * tile, stop, tile))
    cuts.update(edge for edge in (0, extent) if start < edge < stop)
    return (start, *sorted(cuts), stop)


@dataclass(frozen=True, slots=True)
class TileGrid:
    """Where each output chunk of a render comes from, at one pyramid level.

    ``region`` is the rendered area in level pixels (may extend outside the level);
    ``x_edges``/``y_edges`` are the chunk boundaries in level pixels (see
    :func:`split_edges`). Chunk ``(i, j)`` (row ``i``, column ``j``) covers
    ``x_edges[j]:x_edges[j+1]`` and ``y_edges[i]:y_edges[i+1]``.
    """

    level: int
    region: Rect
    level_width: int
    level_height: int
    x_edges: tuple[int, ...]
    y_edges: tuple[int, ...]

    @property
    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Chunk sizes as dask wants them: ``(row heights, column widths)``."""
        return (_diffs(self.y_edges), _diffs(self.x_edges))

    @property
    def shape(self) -> tuple[int, int]:
        """Output ``(height, width)`` in level pixels."""
        return (int(self.region.height), int(self.region.width))

    def chunk_rect(self, row: int, col: int) -> Rect:
        """The level-pixel rectangle of chunk ``(row, col)``."""
        x0, x1 = self.x_edges[col], self.x_edges[col + 1]
        y0, y1 = self.y_edges[row], self.y_edges[row + 1]
        return Rect(x0, y0, x1 - x0, y1 - y0)


def plan_tile_grid(
    region: Rect,
    level: int,
    level_size: tuple[int, int],
    tile_size: tuple[int, int],
    *,
    align: str = "tiles",
) -> TileGrid:
    """Cut a level-pixel ``region`` into chunks.

    ``align="tiles"`` (default) cuts at the level's tile boundaries and the image edges,
    so each chunk reads one tile and lies wholly inside or outside the image.
    ``align="output"`` cuts every ``tile_size`` pixels from the region's origin: a
    regular grid, as OME-Zarr and tiled TIFF output want; chunks may then straddle tiles
    and the image edge.

    Parameters
    ----------
    region
        Integer rectangle in level pixels, as from :func:`region_at_level`.
    level
        The pyramid level index (0 = full resolution), carried along for the reader.
    level_size
        ``(width, height)`` of the level.
    tile_size
        ``(tile_width, tile_height)`` of the level's tiles.
    """
    width, height = level_size
    tile_width, tile_height = tile_size
    if align not in ("tiles", "output"):
        raise ValueError(f"align must be 'tiles' or 'output', got {align!r}")
    if align == "output":
        x0, y0, w, h = (int(v) for v in (region.x, region.y, region.width, region.height))
        x_edges = (*range(x0, x0 + w, tile_width), x0 + w)
        y_edges = (*range(y0, y0 + h, tile_height), y0 + h)
    else:
        x_edges = split_edges(int(region.x), int(region.width), tile_width, width)
        y_edges = split_edges(int(region.y), int(region.height), tile_height, height)
    return TileGrid(
        level=level,
        region=region,
        level_width=width,
        level_height=height,
        x_edges=x_edges,
        y_edges=y_edges,
    )


def _diffs(edges: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(b - a for a, b in itertools.pairwise(edges))


@dataclass(frozen=True, slots=True)
class TilePiece:
    """The part of one tile that a rectangle covers.

    ``tile_x``/``tile_y`` index the tile grid; ``tile_shape`` is the tile's
    ``(height, width)`` (edge tiles are smaller); ``source`` slices ``[y, x]`` into the
    tile, ``target`` slices ``[y, x]`` into an array covering the rectangle.
    """

    tile_x: int
    tile_y: int
    tile_shape: tuple[int, int]
    source: tuple[slice, slice]
    target: tuple[slice, slice]


def tile_pieces(
    rect: Rect, level_size: tuple[int, int], tile_size: tuple[int, int]
) -> list[TilePiece]:
    """The tiles of a grid that ``rect`` overlaps, and which part of each it needs.

    ``rect`` is in level pixels and inside the level of ``level_size`` ``(width, height)``;
    tiles are ``tile_size`` ``(width, height)``, edge tiles cut at the level's edge.

    >>> [(p.tile_x, p.tile_y, p.tile_shape) for p in tile_pieces(Rect(900, 0, 200, 10),
    ...                                                          (1500, 800), (1024, 1024))]
    [(0, 0, (800, 1024)), (1, 0, (800, 476))]
    """
    width, height = level_size
    side_x, side_y = tile_size
    x0, y0 = int(rect.x), int(rect.y)
    x1, y1 = x0 + int(rect.width), y0 + int(rect.height)
    pieces = []
    for tile_y in range(y0 // side_y, (y1 - 1) // side_y + 1):
        for tile_x in range(x0 // side_x, (x1 - 1) // side_x + 1):
            tx0, ty0 = tile_x * side_x, tile_y * side_y
            tile_w, tile_h = min(side_x, width - tx0), min(side_y, height - ty0)
            sx0, sy0 = max(x0, tx0), max(y0, ty0)
            sx1, sy1 = min(x1, tx0 + tile_w), min(y1, ty0 + tile_h)
            pieces.append(
                TilePiece(
                    tile_x,
                    tile_y,
                    (tile_h, tile_w),
                    (slice(sy0 - ty0, sy1 - ty0), slice(sx0 - tx0, sx1 - tx0)),
                    (slice(sy0 - y0, sy1 - y0), slice(sx0 - x0, sx1 - x0)),
                )
            )
    return pieces


def minerva_level_sizes(
    width: int, height: int, tile: int = MINERVA_TILE_SIZE
) -> list[tuple[int, int]]:
    """Minerva's pyramid: ``ceil`` halving until the image fits one tile (bfextractor).

    ``pyramid_levels = max(ceil(log2(size / tile))) + 1``.

    >>> minerva_level_sizes(3000, 1500)
    [(3000, 1500), (1500, 750), (750, 375)]
    >>> len(minerva_level_sizes(1024, 1024)), len(minerva_level_sizes(1025, 10))
    (1, 2)
    """
    longest = max(width, height)
    levels = max(0, math.ceil(math.log2(longest / tile))) + 1 if longest > tile else 1
    sizes = [(width, height)]
    for _ in range(levels - 1):
        w, h = sizes[-1]
        sizes.append((math.ceil(w / 2), math.ceil(h / 2)))
    return sizes
