"""Several renderings of one image as Deep Zoom pyramids in one folder, with a viewer.

``FOLDER/`` holds, per channel group, ``{group}.dzi`` and ``{group}_files/`` (the file
name is the group's name with anything but letters, digits, ``.``, ``_`` and ``-``
replaced by ``-``), ``index.html`` (a page that shows one group at a time, a button per
group, each with its channels' names and colours) and ``openseadragon/`` (OpenSeadragon
6.1.1, vendored from its npm package with its licence, see ``_viewer/README.md``). The
page names no file outside the folder and no server: it works offline, from ``file://``
(the pyramids' descriptions are in the page itself: a browser refuses to fetch a
``.dzi`` from ``file://``), or from any static web server. OpenSeadragon draws on a 2D
canvas (``drawer: "canvas"``): its WebGL drawer cannot use images loaded from ``file://``.

Atomic as one folder: written into ``.FOLDER.partial`` beside it and swapped in when
every pyramid and the page are complete (see :mod:`._store`); ``resume`` continues an
interrupted export. ``.minerva-dask.json`` in the folder says how it was made. One
export of a folder at a time: ``.FOLDER.lock`` beside it is held from the first look at
the partial folder to the swap (see :func:`._atomic.output_lock`).
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .._paths import is_url
from ..errors import OutputError
from ._atomic import (
    FolderWatch,
    check_not_input,
    check_replaceable,
    output_lock,
)
from ._dzi_place import replacement_error
from ._dzi_tiles import dz_shapes
from ._meta import ExportResult, OutputMetadata, rgb_grid
from ._runner import Runner
from ._store import StorePlan, finish
from .dzi import MARKERS, STATE, DziOptions, open_partial, write_pyramid

__all__ = ["group_file_name", "viewer_page", "write_dzi_groups"]

OPENSEADRAGON = "6.1.1"
ASSETS = Path(__file__).resolve().parents[1] / "_viewer"


def group_file_name(name: str) -> str:
    """The file name of a group's pyramid.

    >>> group_file_name("Immune cells / CD8"), group_file_name("DNA")
    ('Immune-cells-CD8', 'DNA')
    """
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.")
    return slug[:100] or "group"


def _legend(image: Any) -> list[dict[str, str]]:
    """The shown channels of a Rendering (duck-typed): name, colour, window."""
    plan, info = getattr(image, "plan", None), getattr(image, "image", None)
    if plan is None or info is None:
        return []
    names = {c.index: c.name for c in info.channels}
    return [
        {
            "name": names.get(c.index, f"channel {c.index + 1}"),
            "color": "#" + "".join(f"{round(v * 255):02X}" for v in c.color),
            "window": f"{c.start:g}-{c.end:g}",
        }
        for c in plan.channels
    ]


def viewer_page(title: str, groups: list[dict[str, Any]]) -> str:
    """``index.html``: ``groups`` are ``{"name", "file", "width", "height", "legend"}``
    plus the tile options ``tile_size``, ``overlap``, ``format``."""
    sources = [
        {
            "name": g["name"],
            "file": g["file"],
            "legend": g["legend"],
            "source": {
                "Image": {
                    "xmlns": "http://schemas.microsoft.com/deepzoom/2008",
                    "Url": f"{g['file']}_files/",
                    "Format": g["format"],
                    "Overlap": str(g["overlap"]),
                    "TileSize": str(g["tile_size"]),
                    "Size": {"Width": str(g["width"]), "Height": str(g["height"])},
                }
            },
        }
        for g in groups
    ]
    data = (  # as JSON in a script element: no markup can end it
        json.dumps(sources).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    )
    buttons = "\n".join(
        f'    <button type="button" class="group" role="tab" data-index="{i}" '
        f'aria-selected="{"true" if i == 0 else "false"}">{html.escape(g["name"])}</button>'
        for i, g in enumerate(groups)
    )
    return _PAGE.format(title=html.escape(title), buttons=buttons, data=data)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="minerva-dask">
<title>{title}</title>
<style>
  html, body {{ margin: 0; height: 100%; background: #111; color: #eee;
    font: 14px system-ui, sans-serif; }}
  body {{ display: grid; grid-template-rows: auto minmax(0, 1fr); }}
  header {{ padding: 6px 10px; display: flex; flex-wrap: wrap; gap: 6px 16px;
    align-items: center; background: #222; }}
  h1 {{ font-size: 16px; margin: 0; }}
  #groups {{ display: flex; gap: 4px; flex-wrap: wrap; }}
  .group {{ background: #333; color: #eee; border: 1px solid #555; border-radius: 4px;
    padding: 4px 10px; cursor: pointer; font: inherit; }}
  .group[aria-selected="true"] {{ background: #2a6ad8; border-color: #6b9cf0; }}
  #legend {{ display: flex; gap: 12px; list-style: none; margin: 0; padding: 0;
    flex-wrap: wrap; }}
  #legend span {{ display: inline-block; width: 10px; height: 10px; margin-right: 4px;
    border: 1px solid #888; }}
  #viewer {{ min-height: 0; position: relative; }}
</style>
<script src="openseadragon/openseadragon.min.js"></script>
</head>
<body>
<header>
  <h1>{title}</h1>
  <nav id="groups" role="tablist" aria-label="channel groups">
{buttons}
  </nav>
  <ul id="legend"></ul>
</header>
<div id="viewer"></div>
<script>
const GROUPS = {data};
const viewer = OpenSeadragon({{
  id: "viewer", prefixUrl: "openseadragon/images/", drawer: "canvas",
  showNavigator: true, navigatorPosition: "BOTTOM_RIGHT", maxZoomPixelRatio: 2,
}});
const buttons = Array.from(document.querySelectorAll("#groups .group"));
function show(index) {{
  const group = GROUPS[index];
  const bounds = viewer.world.getItemCount() ? viewer.viewport.getBounds() : null;
  buttons.forEach((b, i) => b.setAttribute("aria-selected", String(i === index)));
  const legend = document.getElementById("legend");
  legend.replaceChildren(...group.legend.map((c) => {{
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.style.background = c.color;
    item.append(swatch, `${{c.name}} (${{c.window}})`);
    return item;
  }}));
  document.body.dataset.shown = "";
  viewer.open(group.source);
  viewer.addOnceHandler("open", () => {{
    if (bounds) viewer.viewport.fitBounds(bounds, true);
    const item = viewer.world.getItemAt(0);
    item.addHandler("fully-loaded-change", (event) => {{
      if (event.fullyLoaded) document.body.dataset.shown = group.file;
    }});
  }});
  history.replaceState(null, "", "#" + encodeURIComponent(group.file));
}}
buttons.forEach((b, i) => b.addEventListener("click", () => show(i)));
const wanted = decodeURIComponent(location.hash.slice(1));
show(Math.max(0, GROUPS.findIndex((g) => g.file === wanted)));
</script>
</body>
</html>
"""


def write_dzi_groups(
    groups: Mapping[str, Any],
    folder: str | os.PathLike[str],
    *,
    runner: Runner,
    title: str | None = None,
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpeg",
    quality: int = 75,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Write each of ``groups`` as a Deep Zoom pyramid into ``folder`` with ``index.html``,
    their tasks run by ``runner``; the writer of :func:`minerva_dask.to_dzi_groups`
    (parameters there)."""
    started = time.perf_counter()
    options = DziOptions(tile_size, overlap, tile_format, quality)
    target = os.fspath(folder).rstrip("/")
    if not groups:
        raise OutputError("no channel groups given: at least one NAME=REQUEST")
    if is_url(target) or target.lower().endswith(".dzi"):
        raise OutputError(
            f"channel groups are written into a local folder (one pyramid per group and "
            f"index.html), not {target!r}: name a folder without .dzi"
        )
    if os.path.islink(target) or (os.path.lexists(target) and not os.path.isdir(target)):
        raise OutputError(f"output {target} exists and is not a folder; remove it first")
    files: dict[str, str] = {}
    for name in groups:
        if not str(name).strip():
            raise OutputError("a channel group needs a name: NAME=REQUEST")
        slug = group_file_name(str(name))
        if slug.lower() in (f.lower() for f in files.values()):
            raise OutputError(f"channel groups {name!r} and another have the same file name {slug}")
        files[name] = slug
    metas = {name: OutputMetadata.of(image) for name, image in groups.items()}
    for meta in metas.values():
        check_not_input(target, meta.inputs)
    grids = {
        name: rgb_grid(image, options.side, target=f"{target} (group {name!r})")[0]
        for name, image in groups.items()
    }
    token = ":".join([options.token(), *(f"{files[n]}={g.name}" for n, g in grids.items())])
    first = next(iter(metas.values()))
    if title is None:
        title = str(first.provenance.get("image") or "minerva-dask")
    # one export of this folder at a time, to the end
    with output_lock(target), FolderWatch() as watch:
        exists = os.path.lexists(target)  # looked at under the lock: no export is between
        if exists and overwrite:
            check_replaceable(target, "channel-group viewer", ("index.html",))
        work = open_partial(target, token, first, exists, overwrite=overwrite, resume=resume)
        watch.watch(work)
        written = skipped = 0
        try:
            pages = []
            for name, data in grids.items():
                w, s = write_pyramid(data, work, files[name], token, options, runner, progress)
                written, skipped = written + w, skipped + s
                pages.append(
                    {
                        "name": str(name),
                        "file": files[name],
                        "width": data.shape[1],
                        "height": data.shape[0],
                        "legend": _legend(groups[name]),
                        "format": options.tile_format,
                        "overlap": options.overlap,
                        "tile_size": options.tile_size,
                    }
                )
            _copy_assets(work)
            with open(os.path.join(work, "index.html"), "w", encoding="utf-8") as fh:
                fh.write(viewer_page(title, pages))
            shutil.rmtree(os.path.join(work, MARKERS), ignore_errors=True)
            state = {
                "state": "complete",
                "openseadragon": OPENSEADRAGON,
                "groups": {name: metas[name].provenance for name in groups},
            }
            with open(os.path.join(work, STATE), "w") as fh:
                json.dump(state, fh)
            if gone := watch.gone(target):
                raise gone
            finish(StorePlan(target, target, work, None, "", False, exists))
        except BaseException as exc:
            replacement_error(exc, work, target, watch, resume)  # the old output is kept
            raise
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(target) for f in fs)
    data = next(iter(grids.values()))
    return ExportResult(
        target,
        (data.shape[0], data.shape[1]),
        len(dz_shapes(data.shape[0], data.shape[1])),
        written,
        skipped,
        size,
        time.perf_counter() - started,
    )


def _copy_assets(work: str) -> None:
    """OpenSeadragon and its licence, into ``work/openseadragon``."""
    out = os.path.join(work, "openseadragon")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(ASSETS, out, ignore=shutil.ignore_patterns("README.md", "__pycache__"))
