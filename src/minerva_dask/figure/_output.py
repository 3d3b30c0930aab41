"""The output folder of a figure, written whole or not at all, and its manifest.

Everything is written into a hidden sibling ``.NAME.RANDOM.partial`` and renamed into
place when complete; an existing folder (``overwrite=True`` only) is moved aside first
and removed after the swap, so a failure at any point leaves the old folder as it was
and no temporary files behind.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._paths import is_url
from ..errors import OutputError
from ._page import LABEL_POSITIONS

if TYPE_CHECKING:
    from ..sources import Source
    from . import FigureResult
    from ._file import Figure
    from ._panels import PanelJob

__all__ = ["check_output_dir", "panel_file_name", "write_outputs"]

logger = logging.getLogger(__name__)
_IMAGE_SUFFIX = re.compile(r"(\.ome)?\.(tiff?|zarr|svs|qptiff|ndpi|scn|czi|png|jpe?g)$", re.I)


def check_output_dir(
    output: str | os.PathLike[str], *, overwrite: bool, inputs: Iterable[str]
) -> Path:
    """The output folder, checked before anything is read: a local path, not an input nor
    inside or around one, its parent writable, and absent unless ``overwrite``."""
    from ..writers._atomic import check_not_input, check_replaceable

    text = os.fspath(output)
    if is_url(text):
        raise OutputError(f"a figure is written to a local folder, not {text}")
    check_not_input(text, inputs)
    target = Path(text)
    if target.is_symlink():  # written through, the link kept (it was swapped for a folder)
        target = Path(os.path.realpath(target))
    if target.exists() and not target.is_dir():
        raise OutputError(f"output {target} exists and is not a folder; give a folder name")
    if target.exists() and not overwrite:
        raise OutputError(
            f"output {target} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    check_replaceable(target, "figure output", ("manifest.json",))
    parent = target.absolute().parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {target}: folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"cannot write {target}: folder {parent} is not writable")
    return target


def panel_file_name(number: int, name: str) -> str:
    """``NN-name.png``: the panel's place in the file and its image's name, made safe.

    >>> panel_file_name(3, "experiments/Slide 7.ome.tiff")
    '03-Slide_7.png'
    """
    stem = _IMAGE_SUFFIX.sub("", name.replace("\\", "/").rsplit("/", 1)[-1])
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._")[:80] or "image"
    return f"{number:02d}-{stem}.png"


def write_outputs(
    figure: Figure,
    jobs: Sequence[PanelJob],
    pixels: Sequence[np.ndarray],
    target: Path,
    *,
    sources: Mapping[str, Source],
    dpi: float | None,
    page_format: str,
    figure_file: str | None,
    started: float,
) -> FigureResult:
    """Write the panel PNGs, the page(s) and the manifest into ``target``, atomically."""
    from . import FigureResult
    from ._page import draw_page, page_of
    from ._panels import job_record

    page_dpi = dpi or max(job.dpi for job in jobs)
    pixel_sizes = {job.panel.number: _pixel_size(job, sources) for job in jobs}
    tmp = target.with_name(f".{target.name[:200]}.{os.urandom(6).hex()}.partial")
    try:
        tmp.mkdir()
        names, records = [], []
        for job, rgb in zip(jobs, pixels, strict=True):
            name = panel_file_name(job.panel.number, job.panel.name)
            _save(rgb, tmp / name, "png", job.dpi)
            record = job_record(job) | {"file": name}
            record["not_drawn"] = _not_drawn(job, pixel_sizes[job.panel.number])
            if page_of(figure, job.panel) is None:
                record["not_drawn"].append("the panel lies on no page")
            records.append(record)
            names.append(name)
        placed = [(job.panel, job.crop, rgb) for job, rgb in zip(jobs, pixels, strict=True)]
        suffix = "png" if page_format == "png" else "tif"
        pages = []
        for index in range(figure.page_count):
            page = draw_page(figure, index, placed, page_dpi, pixel_sizes)
            name = f"page.{suffix}" if figure.page_count == 1 else f"page-{index + 1}.{suffix}"
            _save(np.asarray(page), tmp / name, page_format, page_dpi)
            pages.append((name, page.size))
        manifest = {
            "figure": os.path.basename(figure_file) if figure_file else None,
            "name": figure.name,
            "version": figure.version,
            "dpi": page_dpi,
            "pages": [{"file": n, "size": list(s)} for n, s in pages],
            "paper_size_pt": [figure.paper_width, figure.paper_height],
            "panels": records,
        }
        with open(tmp / "manifest.json", "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, indent=2, ensure_ascii=False)
            fh.write("\n")
        _swap(tmp, target)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        from ..writers._atomic import disk_full, disk_full_error

        if disk_full(exc):  # named by the output asked for, not our hidden folder
            raise disk_full_error(target) from None
        raise
    for record in records:
        for what in record["not_drawn"]:
            logger.warning("panel %d: %s", record["number"], what)
    return FigureResult(
        path=target,
        pages=tuple(target / n for n, _ in pages),
        panels=tuple(target / n for n in names),
        manifest=target / "manifest.json",
        dpi=page_dpi,
        sizes=tuple(job.size for job in jobs),
        page_size=pages[0][1],
        elapsed_s=time.perf_counter() - started,
    )


def _pixel_size(job: PanelJob, sources: Mapping[str, Source]) -> tuple[float, str] | None:
    """The full-resolution pixel size as the figure gives it, else the image's own (µm)."""
    panel = job.panel
    if panel.pixel_size_x and panel.pixel_size_x > 0:
        return panel.pixel_size_x, panel.pixel_size_x_unit
    own = sources[panel.image_id].info.pixel_size_um
    return (own[0], "MICROMETER") if own else None


def _not_drawn(job: PanelJob, pixel: tuple[float, str] | None) -> list[str]:
    panel, missing = job.panel, []
    if panel.scalebar is not None and pixel is None:
        missing.append("scalebar (no pixel size in the figure or the image)")
    unknown = sorted({lab.position for lab in panel.labels} - LABEL_POSITIONS)
    if unknown:
        missing.append(f"labels at unknown position(s) {', '.join(unknown)}")
    if panel.shapes_skipped:
        missing.append(f"{panel.shapes_skipped} shape(s) (text and unknown shapes are not drawn)")
    return missing


def _save(rgb: np.ndarray, path: Path, fmt: str, dpi: float) -> None:
    from ._page import pillow

    image = pillow().Image.fromarray(np.ascontiguousarray(rgb))
    options: dict[str, Any] = {"dpi": (dpi, dpi)}
    if fmt == "tiff":
        options["compression"] = "tiff_deflate"
    image.save(path, format="PNG" if fmt == "png" else "TIFF", **options)


def _swap(tmp: Path, target: Path) -> None:
    """``tmp`` renamed to ``target``; an existing ``target`` moved aside, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name[:200]}.{os.urandom(6).hex()}.old")
        os.rename(target, old)
    try:
        os.rename(tmp, target)
    except BaseException:
        if old is not None:
            with contextlib.suppress(OSError):
                os.rename(old, target)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
