"""Chunk tasks: read one output chunk of a level (or of a level reduced on the fly) and
composite it. Pure functions and small picklable objects, run by dask or by the
dask-free pool of :mod:`minerva_dask.compute`, in this process or on a worker.

``TileReader`` is an array-like view of the region at one level for ``da.from_array``
(raw pixels, windowed 8-bit quanta, or a server's RGB); ``render_chunk`` reads the shown
channels of a chunk ``group`` at a time (``ChannelPlanes``, with read-ahead) and
composites them; ``server_chunk`` takes a server-composited chunk as it is. Parts outside
the level are background.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Executor, Future
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ._inputs import note_inputs
from .geometry import Rect
from .kernel import composite, fill_background
from .plan import RenderPlan
from .projection import project_planes
from .reduction import block_means
from .request import ResolvedChannel
from .sources.base import Source, capabilities

if TYPE_CHECKING:
    import dask.array as da

__all__ = [
    "ChannelPlanes",
    "ChunkTask",
    "CompositeSpec",
    "TileReader",
    "level_array",
    "render_chunk",
    "server_chunk",
    "windowed_styles",
]


class TileReader:
    """Array-like view of a region of one level, for ``da.from_array``.

    ``mode`` ``"raw"`` or ``"windowed"``: shape ``(c, y, x)``, raw pixels or 8-bit quanta
    of the shown channels. ``"composite"``: shape ``(y, x, 3)``, the server's RGB. Parts
    outside the level are ``fill`` (broadcast, never allocated for a chunk wholly outside).
    Where the plan reduces the level (``plan.reduction`` k > 1) its pixels are those of the
    virtual level: means of k x k level blocks (:func:`minerva_dask.reduction.block_means`),
    read one level tile at a time.
    """

    def __init__(
        self,
        source: Source,
        plan: RenderPlan,
        mode: str,
        model: str = "color",
        fill: tuple[int, ...] = (0,),
    ) -> None:
        self.source, self.grid, self.mode, self.model = source, plan.grid, mode, model
        self.reduction = plan.reduction
        self.styles = plan.channels
        self.z, self.t = plan.z, plan.t
        self.projection = plan.projection
        if plan.projection is not None:
            self.planes = plan.projection.planes(source.info.size_z)
        height, width = plan.grid.shape
        if mode == "composite":
            self.dtype, self.shape = np.dtype(np.uint8), (height, width, 3)
            self.fill = np.asarray(fill, np.uint8)
        else:
            self.dtype = np.dtype(np.uint8 if mode == "windowed" else source.info.dtype)
            self.shape = (len(self.styles), height, width)
            self.fill = np.zeros((), self.dtype)
        self.ndim = 3

    def __getitem__(self, key: tuple[Any, ...]) -> np.ndarray:
        key = tuple(key) + (slice(None),) * (3 - len(key))
        spatial = (0, 1) if self.mode == "composite" else (1, 2)
        if not all(isinstance(key[i], slice) and key[i].step in (None, 1) for i in spatial):
            whole = tuple(slice(None) if i in spatial else k for i, k in enumerate(key))
            return self[whole][tuple(k if i in spatial else slice(None) for i, k in enumerate(key))]
        (y0, y1, _), (x0, x1, _) = (key[i].indices(self.shape[i]) for i in spatial)
        region = self.grid.region
        rect = Rect(int(region.x) + x0, int(region.y) + y0, x1 - x0, y1 - y0)
        inside = rect.intersection(Rect(0, 0, self.grid.level_width, self.grid.level_height))
        if self.mode == "composite":
            shape: tuple[int, ...] = (y1 - y0, x1 - x0, 3)
            styles = self.styles
        else:
            styles = self.styles[key[0]] if isinstance(key[0], slice) else (self.styles[key[0]],)
            shape = (len(styles), y1 - y0, x1 - x0)
        if inside is None:
            return np.broadcast_to(self.fill, shape)
        block = self._read(inside, styles)
        if inside == rect:
            return block
        out = np.empty(shape, self.dtype)
        out[...] = self.fill
        dx, dy = int(inside.x - rect.x), int(inside.y - rect.y)
        h, w = int(inside.height), int(inside.width)
        if self.mode == "composite":
            out[dy : dy + h, dx : dx + w] = block
        else:
            out[:, dy : dy + h, dx : dx + w] = block
        return out

    def _read(self, rect: Rect, styles: tuple[ResolvedChannel, ...]) -> np.ndarray:
        """Pixels ``rect`` (inside the level, reduced by ``self.reduction``) of ``styles``."""
        if self.reduction == 1:
            return self._read_level(rect, styles)
        spec = self.source.info.levels[self.grid.level]
        return block_means(
            lambda piece: self._read_level(piece, styles),
            rect,
            self.reduction,
            (spec.width, spec.height),
            (spec.tile_width, spec.tile_height),
            self.dtype,
            channels_last=self.mode == "composite",
        )

    def _read_level(self, rect: Rect, styles: tuple[ResolvedChannel, ...]) -> np.ndarray:
        level, z, t = self.grid.level, self.z, self.t
        if self.mode == "raw":
            indices = [style.index for style in styles]
            if self.projection is None:
                return self.source.read_region(level, rect, indices, z=z, t=t)
            return project_planes(  # one plane of the chunk at a time, into an accumulator
                lambda plane: self.source.read_region(level, rect, indices, z=plane, t=t),
                self.planes,
                self.projection.kind,
                self.dtype,
            )
        extra = {} if self.projection is None else {"projection": self.projection}
        server = capabilities(self.source)  # the source itself: its tile_mode said so
        if self.mode == "windowed":
            return server.read_windowed(level, rect, styles, z=z, t=t, **extra)
        return server.read_composite(level, rect, styles, z=z, t=t, model=self.model, **extra)


def level_array(
    source: Source, plan: RenderPlan, mode: str, model: str = "color", fill: tuple[int, ...] = (0,)
) -> da.Array:
    import dask.array as da
    from dask.base import tokenize

    reader = TileReader(source, plan, mode, model, fill)
    reduced = (plan.reduction,) if plan.reduction > 1 else ()  # names kept where not reduced
    projected = (plan.projection,) if plan.projection is not None else ()  # likewise
    name = f"{mode}-" + tokenize(
        source, plan.grid, *reduced, *projected, plan.channels, plan.z, plan.t, model, fill
    )
    rows, cols = plan.grid.chunks
    chunks = (rows, cols, (3,)) if mode == "composite" else ((len(plan.channels),), rows, cols)
    ref = capabilities(source).ref
    note_inputs(name, () if ref is None else (ref,))  # its arrays keep their inputs
    return da.from_array(
        reader,
        chunks=chunks,
        name=name,
        asarray=False,
        fancy=False,
        meta=np.empty((0, 0, 0), reader.dtype),
    )


def windowed_styles(styles: tuple[ResolvedChannel, ...]) -> tuple[ResolvedChannel, ...]:
    """Styles for 8-bit quanta the server has already windowed (and quantized): 0..255."""
    return tuple(replace(s, start=0.0, end=255.0, family="linear", coefficient=1.0) for s in styles)


class CompositeSpec:
    """Everything a chunk's composite needs besides its pixels, as one opaque argument.

    dask walks tuples and lists in task arguments for every task; 40 channel styles and
    the grid's edges per task made graph optimisation of a 100k^2 slide 2x slower. A
    plain object is passed through untouched.
    """

    __slots__ = ("background", "edges", "gamma", "level_size", "preset", "styles")

    def __init__(
        self,
        styles: tuple[ResolvedChannel, ...],
        preset: str,
        gamma: float | None,
        background: tuple[int, int, int],
        level_size: tuple[int, int],
        edges: tuple[tuple[int, ...], tuple[int, ...]],
    ) -> None:
        self.styles, self.preset, self.gamma = styles, preset, gamma
        self.background, self.level_size, self.edges = background, level_size, edges

    def __dask_tokenize__(self) -> tuple[Any, ...]:
        return (self.styles, self.preset, self.gamma, self.background, self.level_size, self.edges)


class ChannelPlanes:
    """The shown channels of one chunk as ``(c, y, x)`` planes, read ``group`` channels at
    a time while the kernel iterates over them (only ``shape``, ``dtype``, ``ndim`` and
    iteration, which is all :func:`kernel.composite` uses).

    With an executor ``reads``, up to ``ahead`` further groups are read on it while the
    kernel composites the current one (for chunks that have cores to spare)."""

    def __init__(
        self,
        reader: TileReader,
        ys: slice,
        xs: slice,
        group: int,
        reads: Executor | None = None,
        ahead: int = 0,
    ) -> None:
        self.reader, self.ys, self.xs, self.group = reader, ys, xs, group
        self.reads, self.ahead = reads, ahead if reads is not None else 0
        self.shape = (len(reader.styles), ys.stop - ys.start, xs.stop - xs.start)
        self.dtype, self.ndim = reader.dtype, 3

    def _read(self, start: int) -> np.ndarray:
        return self.reader[slice(start, start + self.group), self.ys, self.xs]

    def __iter__(self) -> Any:
        starts = range(0, self.shape[0], self.group)
        if self.ahead < 1 or len(starts) < 2:
            for start in starts:
                yield from self._read(start)
            return
        pending: deque[Future[np.ndarray]] = deque()
        try:
            for start in starts:
                pending.append(self.reads.submit(self._read, start))  # type: ignore[union-attr]
                if len(pending) > self.ahead:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for future in pending:  # the kernel stopped early (an error): drop the rest
                future.cancel()


def chunk_slices(edges: tuple[tuple[int, ...], tuple[int, ...]], row: int, col: int):
    """Output-pixel ``(y slice, x slice)`` of chunk ``(row, col)`` from the grid's edges."""
    x_edges, y_edges = edges
    ys = slice(y_edges[row] - y_edges[0], y_edges[row + 1] - y_edges[0])
    xs = slice(x_edges[col] - x_edges[0], x_edges[col + 1] - x_edges[0])
    return ys, xs


def render_chunk(
    reader: TileReader,
    spec: CompositeSpec,
    group: int,
    block_id: tuple[int, ...],
    reads: Executor | None = None,
    ahead: int = 0,
) -> np.ndarray:
    """Read and composite output chunk ``block_id`` (row, column, 0), ``group`` channels
    at a time (``ahead`` groups read ahead on ``reads``, when given)."""
    ys, xs = chunk_slices(spec.edges, *block_id[:2])
    return composite_block(ChannelPlanes(reader, ys, xs, group, reads, ahead), spec, block_id)


def server_chunk(
    reader: TileReader,
    spec: CompositeSpec,
    block_id: tuple[int, ...],
    reads: Executor | None = None,
    ahead: int = 0,
) -> np.ndarray:
    """Output chunk ``block_id`` as the server composited it (outside: background); one
    read, so ``reads`` and ``ahead`` do not apply."""
    ys, xs = chunk_slices(spec.edges, *block_id[:2])
    return reader[ys, xs]


def composite_block(block: Any, spec: CompositeSpec, block_id: tuple[int, ...]) -> np.ndarray:
    """Composite one chunk; pixels outside the level become the background.

    ``spec.edges`` are the grid's ``(x_edges, y_edges)`` in level pixels; ``block_id``
    (row, column, 0) says which chunk this is.
    """
    (x_edges, y_edges), (row, col) = spec.edges, block_id[:2]
    x0, x1, y0, y1 = x_edges[col], x_edges[col + 1], y_edges[row], y_edges[row + 1]
    inside = Rect(x0, y0, x1 - x0, y1 - y0).intersection(Rect(0, 0, *spec.level_size))
    if inside is None:
        return fill_background((y1 - y0, x1 - x0), spec.background)
    out = composite(block, spec.styles, preset=spec.preset, gamma=spec.gamma)
    ix0, iy0 = int(inside.x) - x0, int(inside.y) - y0
    ix1, iy1 = ix0 + int(inside.width), iy0 + int(inside.height)
    if (ix0, iy0, ix1, iy1) != (0, 0, x1 - x0, y1 - y0):  # straddles the image edge
        color = np.asarray(spec.background, np.uint8)
        out[:iy0], out[iy1:] = color, color
        out[iy0:iy1, :ix0], out[iy0:iy1, ix1:] = color, color
    return out


class ChunkTask:
    """The work for any output chunk of one rendering, as a small read-only record: read
    with ``reader``, composite with ``spec``, ``group`` channels at a time (``None``: the
    server composited the chunk; it is taken as it is). Called with the chunk's
    ``(row, col, 0)``, and optionally an executor and a depth to read channel groups
    ahead. A plain object, not a tuple or dataclass, so dask passes it through untouched.
    """

    __slots__ = ("group", "reader", "spec")

    def __init__(self, reader: TileReader, spec: CompositeSpec, group: int | None) -> None:
        object.__setattr__(self, "reader", reader)
        object.__setattr__(self, "spec", spec)
        object.__setattr__(self, "group", group)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"ChunkTask is read-only ({name})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (ChunkTask, (self.reader, self.spec, self.group))

    def __call__(
        self, block_id: tuple[int, ...], reads: Executor | None = None, ahead: int = 0
    ) -> np.ndarray:
        if self.group is None:
            return server_chunk(self.reader, self.spec, block_id)
        return render_chunk(self.reader, self.spec, self.group, block_id, reads, ahead)
