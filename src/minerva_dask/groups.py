"""Several channel groups of one image, as Deep Zoom pyramids with a viewer page.

>>> import tempfile, minerva_dask as md
>>> out = tempfile.mkdtemp() + "/viewer"
>>> result = md.crop_groups(
...     {"DNA": "/0/0/0/?c=1|600:24000$0000FF&region=0,0,4096,3072",
...      "Tumour": "/0/0/0/?c=3|500:20000$FF0000,4|500:20000$FFFF00&region=0,0,4096,3072"},
...     out, image=md.demo_image_path(), max_size=512)
>>> import os; sorted(name for name in os.listdir(out) if not name.endswith("_files"))
['.minerva-dask.json', 'DNA.dzi', 'Tumour.dzi', 'index.html', 'openseadragon']
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ._redact import redact_url
from .api import CropResult, _check_arguments, describe_plan
from .compute import check_cluster_options, compute_context, compute_options
from .errors import OutputError, RequestError
from .graph import render
from .plan import MAX_PIXELS, MAX_READ_PIXELS
from .request import RenderRequest
from .request_url import default_request, parse_request
from .sources import Source, open_source

__all__ = ["check_one_image", "crop_groups"]

logger = logging.getLogger(__name__)

_FILE_SUFFIXES = (".png", ".tif", ".tiff", ".zarr", ".dzi", ".html")


def check_one_image(requests: Sequence[RenderRequest]) -> None:
    """Refuse groups whose requests name different images or servers: one image is opened,
    and another group's image would be shown silently in its place."""
    ids = sorted({r.image_id for r in requests if r.image_id is not None})
    servers = sorted({redact_url(r.server) for r in requests if r.server})
    if len(ids) > 1 or len(servers) > 1:
        raise RequestError(
            f"channel groups show one image; the requests name several ({', '.join(servers)} "
            f"image {', '.join(ids)}): give every group the same image (a folder per image)"
        )


def crop_groups(
    groups: Mapping[str, RenderRequest | str | None] | Sequence[RenderRequest | str],
    output: str | os.PathLike[str],
    *,
    image: str | os.PathLike[str] | Source | None = None,
    title: str | None = None,
    storage_options: dict[str, Any] | None = None,
    preset: str = "linear",
    gamma: float | None = None,
    background: str | Sequence[int] = "black",
    max_size: int | None = None,
    level_rule: str = "general",
    max_pixels: int = MAX_PIXELS,
    max_read_pixels: int = MAX_READ_PIXELS,
    scheduler: Any = None,
    local_cluster: int | None = None,
    memory_limit: str | None = None,
    progress: bool = False,
    overwrite: bool = False,
    resume: bool = False,
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpeg",
    tile_quality: int = 75,
) -> CropResult:
    """Render each of ``groups`` (``{name: request}``, or a list of requests named after
    their channels, ``"DNA + CD8"``; a request as :func:`crop` takes it) from ``image``
    and write them into the folder ``output``: one Deep Zoom pyramid per
    group and ``index.html``, a page that switches between them and works offline (see
    :func:`minerva_dask.to_dzi_groups`). ``title``: the page's title, default the image's
    name. Other arguments as :func:`minerva_dask.crop`; the result's shape and level are
    the first group's.
    """
    from .exports import to_dzi_groups
    from .writers.dzi import DziOptions

    started = time.perf_counter()
    named = isinstance(groups, Mapping)
    if isinstance(groups, str) or not groups:
        raise RequestError("channel groups are a non-empty {name: request} or list of requests")
    items = list(groups.items()) if named else [(None, request) for request in groups]  # type: ignore[union-attr]
    for _, request in items:
        _check_arguments(request, output)
    name = os.fspath(output).rstrip("/")
    if name.lower().endswith(_FILE_SUFFIXES):
        raise OutputError(
            f"channel groups are written into a folder (one Deep Zoom pyramid per group and "
            f"index.html), not {name!r}: name a folder, e.g. -o viewer"
        )
    check_cluster_options(scheduler, local_cluster, memory_limit)
    options = DziOptions(tile_size, overlap, tile_format, tile_quality)  # checked before reading
    items = [(g, parse_request(r) if isinstance(r, str) else r) for g, r in items]
    check_one_image([r for _, r in items if r is not None])
    source = open_source(image, storage_options=storage_options)  # an open source as it is
    renderings = {}
    for group, request in items:
        if request is None:
            request = default_request(source.info)
        if max_size is not None:
            request = replace(request, max_size=max_size)
        rendering = render(
            source,
            request,
            preset=preset,
            gamma=gamma,
            background=background,
            level_rule=level_rule,
            align="output",
            chunk_size=options.side,
            max_pixels=max_pixels,
            max_read_pixels=max_read_pixels,
        )
        group = str(group) if named else _channel_names(rendering, renderings)
        renderings[group] = rendering
        logger.info("%s: %s", group, describe_plan(rendering))
    with compute_context(
        scheduler, local_cluster=local_cluster, memory_limit=memory_limit
    ) as client:
        result = to_dzi_groups(
            renderings,
            output,
            title=title,
            tile_size=tile_size,
            overlap=overlap,
            tile_format=tile_format,
            quality=tile_quality,
            overwrite=overwrite,
            resume=resume,
            client=client,
            progress=progress,
            compute_kwargs=compute_options(source, {}),
        )
    first = next(iter(renderings.values()))
    return CropResult(
        result.path,
        result.shape,
        first.level,
        first.downsample,
        result.size_bytes,
        time.perf_counter() - started,
        result.levels,
        result.chunks_skipped,
    )


def _channel_names(rendering: Any, taken: Mapping[str, Any]) -> str:
    """A group's name from its shown channels' names (``"DNA + CD8"``), unique."""
    names = {c.index: c.name for c in rendering.image.channels}
    base = " + ".join(names.get(c.index, str(c.index + 1)) for c in rendering.plan.channels)
    base, count = base or "group", 1
    name = base
    while name in taken:
        count += 1
        name = f"{base} ({count})"
    return name
