"""The dask graph: per-channel lazy arrays of a region, and the composite over them.

Data flow for one request: choose the level (``geometry``), cut the region into chunks
aligned with the level's tiles, and make one task per output chunk that reads the shown
channels of that chunk (``source.read_region``) and composites them (``kernel.composite``).
Where the source stores channels apart (``channels_per_read``: TIFF pages, one-channel
zarr chunks) the task reads and composites one channel group at a time, so its memory is
one plane and the accumulator whatever the channel count; otherwise it reads all shown
channels at once. Server-rendered tiles (windowed, composite) go through the same lazy
reader as ``channel_arrays``. Chunks wholly outside the image read nothing and become
background. Planning (level, reduction, grid, budgets) is :mod:`minerva_dask.plan`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from ._inputs import note_inputs
from .chunks import (
    ChunkTask,
    CompositeSpec,
    TileReader,
    level_array,
    windowed_styles,
)
from .colors import parse_background
from .errors import RequestError
from .kernel import PRESETS, check_styles
from .plan import (  # noqa: F401  (LEVEL_RULES, MIN_CHUNK_SIDE: importable from here too)
    LEVEL_RULES,
    MAX_PIXELS,
    MAX_READ_PIXELS,
    MIN_CHUNK_SIDE,
    Planned,
    RenderPlan,
    plan_render,
)
from .request import RenderRequest
from .sources.base import (
    ImageInfo,
    Source,
    capabilities,
    channels_per_read,
    server_rendered,
    tile_mode,
)

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["RenderPlan", "Rendering", "channel_arrays", "plan_render", "render"]

# Gamma that server-rendered composites carry (recorded in the Rendering, not applied).
_SERVER_GAMMA = {"minerva-render-tile": 2.2}


def channel_arrays(
    source: Source,
    request: RenderRequest,
    *,
    level: int | None = None,
    level_rule: str = "general",
    chunk_size: int | tuple[int, int] | None = None,
    max_pixels: int = MAX_PIXELS,
    max_read_pixels: int = MAX_READ_PIXELS,
) -> dict[int, da.Array]:
    """Lazy raw arrays ``(y, x)`` of the shown channels over the region, at the render level.

    Sized as the render is: where the level is reduced on the fly to keep ``max_size``,
    each pixel is the mean of its block of level pixels, rounded to the dtype (see
    :func:`plan_render`). Keys are 0-based channel indices. Chunks line up with the
    level's tiles; each chunk read fetches all shown channels of its tile together, so
    compute them together (``dask.compute(*arrays.values())``). Pixels outside the image
    are 0.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> arrays = md.channel_arrays(src, md.parse_request("/0/0/0/?c=1,-2,3&region=0,0,1024,512"))
    >>> {index: (a.shape, str(a.dtype)) for index, a in arrays.items()}
    {0: ((512, 1024), 'uint16'), 2: ((512, 1024), 'uint16')}
    """
    if server_rendered(source):
        raise RequestError(
            f"{source!r} serves rendered tiles, not raw pixel values; channel_arrays needs a "
            "file source (OME-TIFF, OME-Zarr)"
        )
    plan = plan_render(
        source.info,
        request,
        level=level,
        level_rule=level_rule,
        chunk_size=chunk_size,
        max_pixels=max_pixels,
        max_read_pixels=max_read_pixels,
    )
    stack = level_array(source, plan, "raw")
    return {channel.index: stack[i] for i, channel in enumerate(plan.channels)}


@dataclass(frozen=True)
class Rendering(Planned):
    """A lazy rendered composite and how it was made.

    ``data`` is a dask array ``(height, width, 3)`` uint8 (axes ``y, x, rgb``) whose
    chunks line up with the source tiles at ``plan.level``. Nothing is read until it is
    computed (``rendering.compute()``, ``np.asarray(rendering)``, or a writer).

    Every output chunk is one independent task, ``chunk_task`` (a
    :class:`~minerva_dask.chunks.ChunkTask`) called with the chunk's ``(row, col, 0)``:
    ``compute_chunk(row, col)`` runs it. ``graph`` is the dask task
    graph of those tasks, keyed ``(name, row, col, 0)``, and ``data`` the dask array over
    it; both are made when first asked, so dask is imported then, not before (a PNG
    written where dask was never loaded runs the chunk tasks on a thread pool of its own).
    ``chunks`` are the output's ``(row heights, column widths, (3,))`` in pixels.
    """

    chunk_task: ChunkTask = field(repr=False)
    chunks: tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]
    plan: RenderPlan
    request: RenderRequest
    image: ImageInfo
    preset: str
    gamma: float
    background: tuple[int, int, int]
    source: Any = field(default=None, repr=False, compare=False)

    @cached_property
    def name(self) -> str:
        """The dask name of this rendering: the same render, the same name (a resumed
        export recognises its chunks by it)."""
        from dask.base import tokenize

        task, plan = self.chunk_task, self.plan
        reader, spec = task.reader, task.spec
        last = spec if task.group is None else task.group  # as named before the record
        reduced = (plan.reduction,) if plan.reduction > 1 else ()  # as before where not reduced
        projected = (plan.projection,) if plan.projection is not None else ()  # likewise
        token = tokenize(
            self.source,
            plan.grid,
            *reduced,
            *projected,
            plan.channels,
            plan.z,
            plan.t,
            self.request.model,
            spec,
            last,
        )
        return f"render-{reader.mode}-{token}"

    @cached_property
    def graph(self) -> dict[tuple[Any, ...], Any]:
        """The dask task graph: one task per output chunk, keyed ``(name, row, col, 0)``."""
        rows, cols = len(self.chunks[0]), len(self.chunks[1])
        return {
            (self.name, row, col, 0): (self.chunk_task, (row, col, 0))
            for row in range(rows)
            for col in range(cols)
        }

    def compute_chunk(
        self, row: int, col: int, *, reads: Executor | None = None, ahead: int = 0
    ) -> np.ndarray:
        """Read and composite output chunk ``(row, col)``: ``(y, x, 3)`` uint8.

        Where channels are read in groups, ``reads`` (an executor) may read up to
        ``ahead`` groups while the current one is composited: for a chunk that has
        threads to spare (fewer chunks than cores). Same pixels either way.
        """
        return self.chunk_task((row, col, 0), reads, ahead)

    @cached_property
    def data(self) -> da.Array:
        """The rendering as a dask array ``(height, width, 3)`` uint8."""
        import dask.array as da
        from dask.highlevelgraph import HighLevelGraph

        note_inputs(self.name, self.inputs)  # the bare array keeps its inputs too
        graph = HighLevelGraph.from_collections(self.name, self.graph, dependencies=())
        return da.Array(graph, self.name, self.chunks, meta=np.empty((0, 0, 0), np.uint8))

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, 3)`` in output pixels."""
        return (sum(self.chunks[0]), sum(self.chunks[1]), 3)

    def compute(self, **kwargs: Any) -> np.ndarray:
        """Compute the whole image as a numpy ``(height, width, 3)`` uint8 array.

        On the threaded scheduler a network source gets as many threads as it wants tiles
        in flight (``source.io_concurrency``), so latency is hidden; ``kwargs`` go to
        ``dask.compute`` and win.
        """
        from .compute import compute_options

        return self.data.compute(**compute_options(self.source, kwargs))

    def preview(self, max_size: int = 512) -> np.ndarray:
        """A small ``(y, x, 3)`` picture of this rendering (rendered from a coarse level)."""
        return preview(self, max_size)

    def row_blocks(
        self,
        *,
        client: Any = None,
        compute_kwargs: dict[str, Any] | None = None,
        progress: bool = False,
    ) -> Iterator[np.ndarray]:
        """This rendering as numpy row blocks ``(y, x, 3)``, top to bottom, computed in
        order as they are consumed (see :func:`minerva_dask.compute.row_blocks`)."""
        from .compute import row_blocks

        return row_blocks(self, client, compute_kwargs or {}, progress)

    def _repr_html_(self) -> str:
        from ._html import rendering_html

        return rendering_html(self, self.preview())

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        result = self.compute()
        return result if dtype is None else result.astype(dtype)

    @property
    def inputs(self) -> tuple[str, ...]:
        """Where the source's pixels come from (a path or URL), for writers to refuse to
        overwrite them; empty for sources without one (servers)."""
        ref = capabilities(self.source).ref
        return (ref,) if ref is not None else ()


def preview(rendering: Any, max_size: int = 512) -> np.ndarray:
    """A small ``(y, x, 3)`` uint8 picture of a rendering, at most ``max_size`` a side.

    The request is rendered again with ``max_size`` from the coarsest suitable level (a
    level reduced on the fly when none is small enough), so a whole-slide rendering
    previews in a moment.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> rgb = md.render(src, md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,4096,3072"))
    >>> preview(rgb, 256).shape
    (192, 256, 3)
    """
    small = render(
        rendering.source,
        replace(rendering.request, max_size=max_size),
        preset=rendering.preset
        if rendering.preset in ("linear", "omero", "minerva-2018")
        else "linear",
        gamma=rendering.gamma,
        background=rendering.background,
    )
    return small.compute()  # the general level rule keeps max_size (reducing if need be)


def render(
    source: Source,
    request: RenderRequest,
    *,
    preset: str = "linear",
    gamma: float | None = None,
    background: str | Sequence[int] = "black",
    level: int | None = None,
    level_rule: str = "general",
    chunk_size: int | tuple[int, int] | None = None,
    align: str = "tiles",
    max_pixels: int = MAX_PIXELS,
    max_read_pixels: int = MAX_READ_PIXELS,
) -> Rendering:
    """Render ``request`` from ``source`` lazily.

    Parameters
    ----------
    source
        An open image (:func:`minerva_dask.open_image`).
    request
        What to draw (:func:`minerva_dask.parse_request` or :class:`RenderRequest`).
    preset
        ``"linear"`` (default), ``"omero"`` or ``"minerva-2018"``; see :mod:`.kernel`.
    gamma
        Output gamma; ``None`` takes the preset's (1, or 2.2 for ``minerva-2018``).
    background
        Colour of output pixels outside the image: ``"black"`` (default), ``"omero"``
        (``#DDDDDD`` like OMERO.figure), a hex string or an RGB triple.
    level, level_rule, chunk_size, align, max_pixels, max_read_pixels
        See :func:`plan_render`: the output keeps ``max_size`` (a level reduced further on
        the fly where no pyramid level is small enough), and outputs over ``max_pixels``
        are refused before any read.

    Returns
    -------
    Rendering
        ``.data`` is a dask array ``(height, width, 3)`` uint8.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.parse_request("/0/0/0/?c=1|0:30000$0000FF&region=-512,0,4096,4096&max_size=512")
    >>> rgb = md.render(src, req)
    >>> rgb.shape, rgb.level
    ((512, 512, 3), 3)
    """
    mode, declared = tile_mode(source), capabilities(source)
    resolved = request.resolve(source.info)
    if request.projection is not None and mode != "raw" and not declared.projects:
        raise RequestError(
            f"p={request.projection.to_param()}: {source!r} cannot project z planes "
            "(OMERO.web's render_image_region ignores p, omero-ms-image-region projects; "
            "Minerva's rendered tiles do not), and its tiles are rendered, so they cannot be "
            "projected here: read raw tiles (Minerva mode raw) or a file"
        )
    try:
        declared.check_styles(resolved)  # a source's own limits, before any read
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    if mode == "composite":
        server_preset = declared.server_preset
        if preset not in ("linear", server_preset) or gamma not in (None, 1.0):
            raise RequestError(
                f"the server renders the composite ({server_preset} maths); for presets or "
                "gamma, read raw or windowed tiles instead (OMERO mode 'windowed', Minerva "
                "mode 'raw')"
            )
        preset = server_preset
    else:
        styles = resolved if mode == "raw" else windowed_styles(resolved)
        try:
            check_styles(styles, preset)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
    if gamma is not None and not (math.isfinite(gamma) and gamma > 0):
        raise RequestError(f"gamma must be a finite number > 0, got {gamma}")
    background_rgb = parse_background(background)
    plan = plan_render(
        source.info,
        request,
        level=level,
        level_rule=level_rule,
        chunk_size=chunk_size,
        align=align,
        max_pixels=max_pixels,
        max_read_pixels=max_read_pixels,
    )
    styles = plan.channels if mode == "raw" else windowed_styles(plan.channels)
    spec = CompositeSpec(
        styles,
        preset,
        gamma,
        background_rgb,
        (plan.grid.level_width, plan.grid.level_height),
        (plan.grid.x_edges, plan.grid.y_edges),
    )
    if mode == "composite":
        reader = TileReader(source, plan, "composite", request.model, background_rgb)
        task = ChunkTask(reader, spec, None)
    else:
        group = (channels_per_read(source, plan.level) if mode == "raw" else None) or len(styles)
        task = ChunkTask(TileReader(source, plan, mode), spec, group)
    rows, cols = plan.grid.chunks
    default_gamma = _SERVER_GAMMA.get(preset) or PRESETS[preset]["gamma"]
    used_gamma = default_gamma if gamma is None else float(gamma)
    return Rendering(
        chunk_task=task,
        chunks=(rows, cols, (3,)),
        plan=plan,
        request=request,
        image=source.info,
        preset=preset,
        gamma=used_gamma,
        background=background_rgb,
        source=source,
    )
