"""``crop``: open, render and write in one call. The one place where the parts meet."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutputError
from .graph import Rendering, render
from .request import RenderRequest, default_request, parse_request
from .sources import Source, open_image

__all__ = ["CropResult", "compute_context", "crop", "output_format"]

logger = logging.getLogger(__name__)

_FORMATS = {".png": "png"}


@dataclass(frozen=True, slots=True)
class CropResult:
    """What ``crop`` wrote: path, output ``(height, width)``, level read, bytes, seconds."""

    path: Path
    shape: tuple[int, int]
    level: int
    downsample: tuple[float, float]
    size_bytes: int
    elapsed_s: float


def output_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """The writer for ``path``: an explicit ``format`` or the file name's extension."""
    if format is not None:
        if format not in _FORMATS.values():
            raise OutputError(f"unknown output format {format!r}; supported: png")
        return format
    name = os.fspath(path).lower()
    for suffix, fmt in _FORMATS.items():
        if name.endswith(suffix):
            return fmt
    raise OutputError(
        f"cannot tell the output format of {os.fspath(path)!r} from its extension; supported: .png"
    )


@contextlib.contextmanager
def compute_context(scheduler: Any = None, *, progress: bool = False) -> Iterator[Any]:
    """Where dask computes: the threaded scheduler (``None``), a ``distributed.Client``,
    or the address of a running scheduler (``"tcp://host:8786"``), with an optional
    progress bar on stderr. Yields the client, or ``None`` for the threaded scheduler.
    """
    with contextlib.ExitStack() as stack:
        client = None
        if isinstance(scheduler, str):
            from ._optional import import_optional

            distributed = import_optional(
                "distributed", "distributed", "Computing on a dask cluster"
            )
            client = stack.enter_context(distributed.Client(scheduler))
        elif scheduler is not None:
            client = scheduler
        if progress and client is None:
            from dask.diagnostics import ProgressBar

            stack.enter_context(ProgressBar(out=sys.stderr, dt=0.2))
        yield client


def _compute(rendering: Rendering, client: Any, progress: bool) -> Any:
    if client is None:
        return rendering.compute()
    future = client.compute(rendering.data)
    if progress:
        from distributed import progress as show_progress

        show_progress(future)
    return future.result()


def crop(
    request: RenderRequest | str | None,
    output: str | os.PathLike[str],
    *,
    image: str | os.PathLike[str] | Source | None = None,
    storage_options: dict[str, Any] | None = None,
    preset: str = "linear",
    gamma: float | None = None,
    background: str | Sequence[int] = "black",
    max_size: int | None = None,
    level_rule: str = "general",
    scheduler: Any = None,
    progress: bool = False,
    format: str | None = None,
    overwrite: bool = True,
) -> CropResult:
    """Render ``request`` from ``image`` and write it to ``output``.

    Parameters
    ----------
    request
        A :class:`RenderRequest`, an OMERO.figure URL, or ``None`` for the image's own
        channel defaults over the whole image.
    output
        Output file; the format follows the extension (``.png``) or ``format``.
    image
        A path or URL to open, or an open source.
    max_size
        Overrides the request's ``max_size``.
    level_rule
        ``"general"`` or ``"omero-figure"`` (see :func:`minerva_dask.graph.plan_render`).
    scheduler
        ``None`` (threaded), a ``distributed.Client`` or a scheduler address.
    progress
        Show a progress bar on stderr.

    Other arguments are those of :func:`minerva_dask.kernel`.
    """
    started = time.perf_counter()
    fmt = output_format(output, format)
    from .writers._atomic import check_output_path

    check_output_path(output, overwrite=overwrite)
    source = (
        image
        if hasattr(image, "read_region")
        else open_image(image, storage_options=storage_options)
    )  # type: ignore[arg-type]
    if isinstance(request, str):
        request = parse_request(request)
    elif request is None:
        request = default_request(source.info)
    if max_size is not None:
        from dataclasses import replace

        request = replace(request, max_size=max_size)
    rendering: Rendering = render(
        source, request, preset=preset, gamma=gamma, background=background, level_rule=level_rule
    )
    logger.info("%s", describe_plan(rendering))
    with compute_context(scheduler, progress=progress) as client:
        pixels = _compute(rendering, client, progress)
    if fmt == "png":
        from .writers.png import to_png

        path = to_png(pixels, output, overwrite=overwrite)
    return CropResult(
        path=Path(path),
        shape=pixels.shape[:2],
        level=rendering.level,
        downsample=rendering.downsample,
        size_bytes=Path(path).stat().st_size,
        elapsed_s=time.perf_counter() - started,
    )


def describe_plan(rendering: Rendering) -> str:
    """One line for a person: the scale, level, output size and channels of a render."""
    fx, fy = rendering.downsample
    scale = f"1/{fx:g}" if fx == fy else f"1/{fx:g} x 1/{fy:g}"
    height, width = rendering.shape[:2]
    names = ", ".join(rendering.image.channels[c.index].name for c in rendering.plan.channels)
    return (
        f"Cropping {scale} scale: level {rendering.level}, output {width} x {height} px, "
        f"channels {names}"
    )
