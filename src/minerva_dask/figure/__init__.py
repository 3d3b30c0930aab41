"""A whole OMERO.figure file rendered from tiles: every panel, and the page.

OMERO.figure's own export renders each panel on the server, which refuses big planes and
caps export near 3k x 3k. Here every panel is a render request (:mod:`._panels`) read
tile by tile from OMERO (``omero=``, image ids from the file) or from files mapped by id
(``images=``), at the panel's ``min_export_dpi`` (else 300, or ``dpi=``), all panels in
one dask computation. The output folder holds one PNG per panel, the page (PNG or TIFF)
with panels at their positions, labels and scalebars, and ``manifest.json``; it appears
whole or not at all (:mod:`._output`).

>>> import tempfile, minerva_dask as md
>>> src = md.open_image(md.demo_image_path())
>>> figure = {"version": 6, "paper_width": 200, "paper_height": 120, "panels": [
...     {"imageId": 1, "name": "demo", "x": 20, "y": 20, "width": 96, "height": 72,
...      "orig_width": 4096, "orig_height": 3072, "zoom": 400,
...      "channels": [{"color": "0000FF", "window": {"start": 600, "end": 24000},
...                    "active": True}]}]}
>>> result = md.render_figure(figure, tempfile.mkdtemp() + "/fig", images={1: src}, dpi=72)
>>> result.panels[0].name, result.sizes[0], result.page_size
('01-demo.png', (96, 72), (200, 120))
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..sources import Source
from ._file import Figure, FigurePanel, read_figure

__all__ = ["Figure", "FigurePanel", "FigureResult", "read_figure", "render_figure"]

PAGE_FORMATS = ("png", "tiff")


@dataclass(frozen=True)
class FigureResult:
    """What :func:`render_figure` wrote: the folder, the page file(s), one PNG per panel
    (in the file's panel order), the manifest, the page dpi, each panel's pixel size
    ``(width, height)`` and the page's size ``(width, height)`` in pixels.

    In a notebook it shows the (first) page inline, at most 1200 pixels wide.
    """

    path: Path
    pages: tuple[Path, ...]
    panels: tuple[Path, ...]
    manifest: Path
    dpi: float
    sizes: tuple[tuple[int, int], ...]
    page_size: tuple[int, int]
    elapsed_s: float

    def page(self, index: int = 0) -> Any:
        """Page ``index`` as a numpy ``(height, width, 3)`` uint8 array."""
        import numpy as np

        with _open(self.pages[index]) as image:
            return np.asarray(image.convert("RGB"))

    def _repr_png_(self) -> bytes:
        import io

        with _open(self.pages[0]) as image:
            shown = image.convert("RGB")
            shown.thumbnail((1200, 1200 * shown.height // max(1, shown.width) + 1))
            out = io.BytesIO()
            shown.save(out, format="PNG")
        return out.getvalue()


@contextlib.contextmanager
def _open(path: Path) -> Iterator[Any]:
    """A page we wrote, opened with Pillow whatever its size (its decompression-bomb
    guard is for files of unknown origin; the page's size was budgeted when made)."""
    from ._page import pillow

    image_module = pillow().Image
    limit, image_module.MAX_IMAGE_PIXELS = image_module.MAX_IMAGE_PIXELS, None
    try:
        image = image_module.open(path)
    finally:
        image_module.MAX_IMAGE_PIXELS = limit
    with image:
        yield image


def render_figure(
    figure: str | os.PathLike[str] | Mapping[str, Any] | Figure,
    output: str | os.PathLike[str],
    *,
    images: Mapping[Any, str | os.PathLike[str] | Source] | None = None,
    omero: str | None = None,
    omero_options: dict[str, Any] | None = None,
    storage_options: dict[str, Any] | None = None,
    dpi: float | None = None,
    page_format: str = "png",
    preset: str = "linear",
    background: str = "black",
    overwrite: bool = False,
    scheduler: Any = None,
    max_pixels: int | None = None,
) -> FigureResult:
    """Render every panel of an OMERO.figure file and its page into the folder ``output``.

    Parameters
    ----------
    figure
        The figure file (a path), its JSON already loaded, or a :class:`Figure`.
    output
        A folder to create (``overwrite=True`` replaces an existing one, whole).
    images
        ``{image id: path, URL or open source}``: where each image id of the figure is.
    omero, omero_options
        The OMERO.web server for image ids not in ``images``, and options of
        :func:`minerva_dask.open_omero` (credentials come from the environment otherwise).
    dpi
        Every panel's and the page's dpi. Default: each panel's ``min_export_dpi``, else
        300; the page takes the largest of them.
    page_format
        ``"png"`` or ``"tiff"``.
    preset, background
        As for :func:`minerva_dask.render`.
    scheduler
        A ``distributed.Client`` or scheduler address; the threaded scheduler by default.
    max_pixels
        Largest page, panel, or render before resampling, in pixels (default 2^31 - 1,
        what PNG decoders accept): they are held in memory, so a dpi that would exceed
        it is refused before anything is read.

    Errors name the panel (``panel 2 (image 123, 'name'): ...``): an image not found or
    not of the figure's size, a channel, z or t the image does not have, a Z projection.
    Images opened here are closed on return.
    """
    from ..errors import RequestError
    from ._panels import close_opened, open_images

    started = time.perf_counter()
    if page_format not in PAGE_FORMATS:
        raise RequestError(f"page_format must be one of {PAGE_FORMATS}, got {page_format!r}")
    if dpi is not None and not (isinstance(dpi, int | float) and 0 < dpi < 1e5):
        raise RequestError(f"dpi must be a number > 0 and < 100000, got {dpi!r}")
    from ._page import pillow

    pillow()  # before anything is read: one line if Pillow is missing
    source_file = None if isinstance(figure, Mapping | Figure) else os.fspath(figure)
    if not isinstance(figure, Figure):
        figure = read_figure(figure if source_file is None else source_file)  # type: ignore[arg-type]
    given = {
        str(k): (os.fspath(v) if isinstance(v, os.PathLike) else v)
        for k, v in (images or {}).items()
    }
    sources = open_images(
        figure, given, omero, storage_options=storage_options, omero_options=omero_options
    )
    try:
        return _render(
            figure,
            sources,
            output,
            source_file=source_file,
            started=started,
            dpi=dpi,
            page_format=page_format,
            preset=preset,
            background=background,
            overwrite=overwrite,
            scheduler=scheduler,
            max_pixels=max_pixels,
        )
    finally:
        close_opened(sources, given)


def _render(
    figure: Figure,
    sources: Mapping[str, Source],
    output: str | os.PathLike[str],
    *,
    source_file: str | None,
    started: float,
    dpi: float | None,
    page_format: str,
    preset: str,
    background: str,
    overwrite: bool,
    scheduler: Any,
    max_pixels: int | None,
) -> FigureResult:
    """:func:`render_figure` once its images are open."""
    from ..compute import compute_context
    from ..errors import RequestError
    from ..plan import PNG_MAX_PIXELS
    from ._layout import panel_pixels
    from ._panels import compute_panels, plan_panels

    budget = PNG_MAX_PIXELS if max_pixels is None else max_pixels
    jobs = plan_panels(
        figure, sources, dpi=dpi, preset=preset, background=background, max_pixels=budget
    )
    page_w, page_h = panel_pixels(
        figure.paper_width, figure.paper_height, dpi or max(job.dpi for job in jobs)
    )
    if page_w * page_h > budget:
        raise RequestError(
            f"the page is {page_w:,} x {page_h:,} px at this dpi, over the budget of "
            f"{budget:,} pixels; ask a lower dpi, or raise max_pixels= (CLI: --max-pixels)"
        )
    inputs = [ref for job in jobs for ref in job.rendering.inputs]
    if source_file is not None:
        inputs.append(source_file)
    from ._output import check_output_dir, write_outputs

    target = check_output_dir(output, overwrite=overwrite, inputs=inputs)
    with compute_context(scheduler) as client:
        pixels = compute_panels(jobs, client)
    return write_outputs(
        figure,
        jobs,
        pixels,
        target,
        sources=sources,
        dpi=dpi,
        page_format=page_format,
        figure_file=source_file,
        started=started,
    )
