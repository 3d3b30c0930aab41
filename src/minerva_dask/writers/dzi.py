"""Deep Zoom output: ``slide.dzi`` and ``slide_files/LEVEL/COL_ROW.jpeg``, as pyvips'
``dzsave`` lays them out, for OpenSeadragon, Minerva Story and other tiled viewers.

Levels, tiles and overlap follow Deep Zoom's rule (see :mod:`._dzi_tiles`): the full
rendering at the top, each level below the 2 x 2 mean of the one above (odd edges
repeated, means rounded half up, as in the OME-TIFF and OME-Zarr pyramids), down to
1 x 1. Every tile holds exactly the pixels of its level it covers, overlap included.

The work is done in stages of tasks, each task one block of ``tile_size * 2**steps``
pixels (about 1024) of a level with a margin of its neighbours' pixels, computed on the
workers (threads, or a ``distributed`` cluster whose workers see the output's folder):
the task renders nothing twice (the rendering is computed one row of blocks at a time;
a row is kept, on the workers, until the rows on both sides are done: three rows of the
rendering in memory), cuts and encodes the tiles of ``steps`` levels and writes them,
saves the next level's block losslessly for the next stage, then leaves a completion
marker.

Atomic: everything is written into one hidden folder beside the target,
``.slide.dzi.partial/`` (``slide_files/``, then ``slide.dzi`` last), with a state file
naming the render. When complete, the pyramid is moved into place in an order that never
shows half of one: the old ``slide.dzi`` (if any) is moved aside first, then
``slide_files`` swapped in (one atomic exchange where Linux offers it), then the new
``slide.dzi`` renamed in; the ``.dzi`` is the pyramid's entry point, written last. A
failure in between puts the old ``.dzi`` back. Interrupted, the export stays in its
partial folder, and ``resume=True`` continues it there, skipping the blocks whose marker
matches. Local (or shared) filesystems only.

One export of an output at a time: the whole export, from looking at the partial folder
to the final rename, holds ``.slide.dzi.lock`` beside the target (see
:func:`._atomic.output_lock`); a second export or resume of it is refused at once, before
it touches anything. A partial folder removed mid-export is one clear error, and is
never put in place.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._paths import is_url
from ..errors import OutputError
from ._atomic import (
    FolderWatch,
    check_not_input,
    output_lock,
)
from ._dzi_place import STATE, open_partial, place, replacement_error
from ._dzi_tiles import SUFFIX, BlockJob, dz_shapes, load_carry, tile_block
from ._meta import ExportResult, OutputMetadata, rgb_grid
from ._progress import Progress
from ._runner import Runner

__all__ = ["STATE", "DziOptions", "dzi_xml", "open_partial", "write_dzi", "write_pyramid"]

MARKERS = ".minerva-dask"
BLOCK = 1024  # about the side of one task's block, in pixels


@dataclass(frozen=True, slots=True)
class DziOptions:
    """Tile side and overlap (pyvips' defaults: 254 and 1), ``jpeg`` or ``png`` tiles,
    JPEG quality 1-100 (pyvips' default: 75)."""

    tile_size: int = 254
    overlap: int = 1
    tile_format: str = "jpeg"
    quality: int = 75

    def __post_init__(self) -> None:
        if self.tile_format not in SUFFIX:
            raise OutputError(f"tile format must be jpeg or png, got {self.tile_format!r}")
        if not 1 <= self.tile_size <= 8192:
            raise OutputError(f"tile size must be 1 to 8192 pixels, got {self.tile_size}")
        if not 0 <= self.overlap <= self.tile_size // 2:
            raise OutputError(
                f"overlap must be 0 to half the tile size ({self.tile_size // 2}), got "
                f"{self.overlap}"
            )
        if not 1 <= self.quality <= 100:
            raise OutputError(f"JPEG quality must be 1 to 100, got {self.quality}")

    @property
    def steps(self) -> int:
        """Levels written by one task: its block is ``tile_size * 2**steps`` pixels."""
        return max(1, int(math.log2(max(1, BLOCK // self.tile_size))))

    @property
    def side(self) -> int:
        return self.tile_size * 2**self.steps

    def token(self) -> str:
        return f"dzi:{self.tile_size}:{self.overlap}:{self.tile_format}:{self.quality}"


def dzi_xml(height: int, width: int, options: DziOptions) -> str:
    """The ``.dzi`` file, as ``dzsave`` writes it."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<Image xmlns="http://schemas.microsoft.com/deepzoom/2008"\n'
        f'  Format="{SUFFIX[options.tile_format]}"\n'
        f'  Overlap="{options.overlap}"\n'
        f'  TileSize="{options.tile_size}"\n'
        "  >\n"
        "  <Size \n"
        f'    Height="{height}"\n'
        f'    Width="{width}"\n'
        "  />\n"
        "</Image>\n"
    )


def write_dzi(
    image: Any,
    path: str | os.PathLike[str],
    *,
    runner: Runner,
    tile_size: int = 254,
    overlap: int = 1,
    tile_format: str = "jpeg",
    quality: int = 75,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
) -> ExportResult:
    """Write ``image`` as a Deep Zoom pyramid, ``path`` (``NAME.dzi``) and ``NAME_files/``,
    its tasks run by ``runner``; the writer of :func:`minerva_dask.to_dzi` (parameters
    there)."""
    started = time.perf_counter()
    options = DziOptions(tile_size, overlap, tile_format, quality)
    target = os.fspath(path)
    if is_url(target) or not target.lower().endswith(".dzi"):
        raise OutputError(f"a Deep Zoom output is a local path ending in .dzi, got {target!r}")
    stem = os.path.abspath(target)[: -len(".dzi")]
    files = stem + "_files"
    if len(os.path.basename(files).encode()) > 255:  # the limit of a file name's bytes
        raise OutputError(
            f"cannot write {target}: its tiles' folder {os.path.basename(files)[:40]}..._files "
            "would be a longer name than a folder may have (255 bytes): choose a shorter name"
        )
    meta = OutputMetadata.of(image)
    for out in (target, files):
        check_not_input(out, meta.inputs)
    for out, wanted, kind in (
        (target, os.path.isfile, "regular file"),
        (files, os.path.isdir, "folder"),
    ):
        if os.path.lexists(out) and (os.path.islink(out) or not wanted(out)):
            raise OutputError(  # a link, a device, a pipe: never swapped out for ours
                f"output {out} exists and is not a {kind}; minerva-dask does not replace it: "
                "remove it or choose another name"
            )
    data, _ = rgb_grid(image, options.side, target=target)
    token = f"{data.name}:{options.token()}"
    name = os.path.basename(stem)
    # one export of this output at a time, from here to the end
    with output_lock(target), FolderWatch() as watch:
        exists = os.path.lexists(target) or os.path.lexists(files)  # under the lock
        work = open_partial(target, token, meta, exists, overwrite=overwrite, resume=resume)
        watch.watch(work)
        try:
            written, skipped = write_pyramid(data, work, name, token, options, runner, progress)
            if gone := watch.gone(target):
                raise gone
            place(work, target, files, name)
        except BaseException as exc:
            replacement_error(exc, work, target, watch, resume)  # the old output is kept
            raise
    size = sum(
        os.path.getsize(os.path.join(folder, f)) for folder, _, fs in os.walk(files) for f in fs
    )
    return ExportResult(
        target,
        (data.shape[0], data.shape[1]),
        len(dz_shapes(data.shape[0], data.shape[1])),
        written,
        skipped,
        size + os.path.getsize(target),
        time.perf_counter() - started,
    )


def write_pyramid(
    data: Any,
    work: str,
    name: str,
    token: str,
    options: DziOptions,
    runner: Runner,
    progress: bool,
) -> tuple[int, int]:
    """Write ``data`` (on a grid of ``options.side``) as ``work/NAME_files`` and, last,
    ``work/NAME.dzi``; blocks written and skipped (their markers matched)."""
    height, width = data.shape[:2]
    shapes = tuple(dz_shapes(height, width))
    side, steps = options.side, options.steps
    files = os.path.join(work, f"{name}_files")
    meta_dir = os.path.join(work, MARKERS, name)
    if os.path.exists(os.path.join(work, f"{name}.dzi")):  # resumed: this one is complete
        return 0, _block_count(shapes, side, steps)
    for level in range(len(shapes)):
        os.makedirs(os.path.join(files, str(level)), exist_ok=True)
    report = Progress(_count_tiles(shapes, options.tile_size), "Deep Zoom", enabled=progress)
    level, written, skipped = len(shapes) - 1, 0, 0
    while True:
        h, w = shapes[level]
        rows, cols = -(-h // side), -(-w // side)
        single = rows == cols == 1
        write = level + 1 if single else steps
        margin = 0 if single else options.overlap * 2**steps
        jobs: dict[int, list[tuple[tuple[int, int, int, int], BlockJob]]] = {}
        for row in range(rows):
            for col in range(cols):
                core = (row * side, col * side, min(h, (row + 1) * side), min(w, (col + 1) * side))
                pad = (max(0, core[0] - margin), max(0, core[1] - margin))
                pad_end = (min(h, core[2] + margin), min(w, core[3] + margin))
                job = BlockJob(
                    files,
                    level,
                    write,
                    core,
                    pad,
                    shapes,
                    options.tile_size,
                    options.overlap,
                    options.tile_format,
                    options.quality,
                    None if single else os.path.join(meta_dir, f"carry-{level}", f"{row}.{col}"),
                    os.path.join(meta_dir, str(level), f"{row}.{col}"),
                    f"{token}:{name}:{level}",
                )
                if _done(job):
                    skipped += 1
                    report.advance(_count_tiles(shapes, options.tile_size, job))
                    continue
                jobs.setdefault(row, []).append(((*pad, *pad_end), job))
        for count in _run_stage(data, side, margin, jobs, runner):
            written += len(count)
            report.advance(sum(count))
        if single:
            break
        level -= steps
        data = _next_level(meta_dir, level + steps, rows, cols, shapes[level], options.tile_size)
        data = data.rechunk((side, side, 3))
    with open(os.path.join(work, f"{name}.dzi"), "w") as fh:
        fh.write(dzi_xml(height, width, options))
    shutil.rmtree(meta_dir, ignore_errors=True)
    return written, skipped


def _block_count(shapes: tuple[tuple[int, int], ...], side: int, steps: int) -> int:
    """The tasks of a whole pyramid (see :func:`write_pyramid`)."""
    level, total = len(shapes) - 1, 0
    while True:
        blocks = -(-shapes[level][0] // side) * -(-shapes[level][1] // side)
        total += blocks
        if blocks == 1:
            return total
        level -= steps


def _done(job: BlockJob) -> bool:
    with contextlib.suppress(OSError), open(job.marker) as fh:
        if fh.read() == job.token:
            return job.carry is None or os.path.exists(job.carry)
    return False


def _count_tiles(
    shapes: tuple[tuple[int, int], ...], size: int, job: BlockJob | None = None
) -> int:
    """Tiles of the whole pyramid, or of one job."""
    if job is None:
        return sum(-(-h // size) * -(-w // size) for h, w in shapes)
    total = 0
    y0, x0, y1, x1 = job.core
    for step in range(job.write):
        if step:
            y0, x0, y1, x1 = y0 // 2, x0 // 2, -(-y1 // 2), -(-x1 // 2)
        total += (-(-y1 // size) - y0 // size) * (-(-x1 // size) - x0 // size)
    return total


def _run_stage(
    data: Any,
    side: int,
    margin: int,
    jobs: dict[int, list[tuple[tuple[int, int, int, int], BlockJob]]],
    runner: Runner,
) -> Any:
    """Compute the jobs of one level, row by row; yields each row's tile counts. A row of
    ``data`` is computed once (persisted) and kept while a row next to it needs it. Each
    row's tasks are done (or stopped) before the next row, or a failure, leaves here."""
    import dask
    import dask.array as da

    rows = len(data.chunks[0])
    held: dict[int, Any] = {}
    for row in sorted(jobs):
        near = range(max(0, row - 1), min(rows, row + 2)) if margin else range(row, row + 1)
        for old in [q for q in held if q not in near]:
            del held[old]
        for q in near:
            if q not in held:
                held[q] = runner.persist(data[q * side : (q + 1) * side])
        window = da.concatenate([held[q] for q in near], axis=0)
        top = near[0] * side
        write = dask.delayed(tile_block, pure=False)
        tasks = [
            write(window[py0 - top : py1 - top, px0:px1], job)
            for (py0, px0, py1, px1), job in jobs[row]
        ]
        yield runner.compute_all(tasks, name="dzi")


def _next_level(
    meta_dir: str,
    above: int,
    rows: int,
    cols: int,
    shape: tuple[int, int],
    small: int,
) -> Any:
    """The level below the last one a stage wrote, from the blocks its tasks saved
    (``small`` pixels a side: a block's side halved ``steps`` times, one tile)."""
    import dask
    import dask.array as da

    h, w = shape
    load = dask.delayed(load_carry, pure=False)
    blocks = []
    for row in range(rows):
        line = []
        for col in range(cols):
            bh = min(small, h - row * small)
            bw = min(small, w - col * small)
            path = os.path.join(meta_dir, f"carry-{above}", f"{row}.{col}")
            line.append(da.from_delayed(load(path, (bh, bw)), (bh, bw, 3), np.uint8))
        blocks.append(da.concatenate(line, axis=1))
    return da.concatenate(blocks, axis=0)
