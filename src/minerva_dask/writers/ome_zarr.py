"""Multiscale OME-Zarr output (NGFF 0.5 on zarr v3 by default, 0.4 on zarr v2).

The rendered RGB is stored as ``(c, y, x)`` uint8, channels Red, Green, Blue; a raw export
(:class:`~minerva_dask.raw.RawRegion`) as its planes in the source dtype, the ``omero``
block holding their labels, colours and windows. Every level
is stored in chunks of one side, the side of the dask blocks that write it (checked before
writing), so each stored chunk is written by exactly one task and workers write in
parallel without locks. Each written chunk leaves a small completion marker
(``.minerva-dask/{level}/{row}.{col}``, holding a token of the render) after its data.
Level ``l + 1`` is the 2 x 2 mean of level ``l`` read back from the store.

A local export is written into a hidden sibling, ``.{name}.partial``, marked in its
attributes as an unfinished export of this render before any chunk is written, and swapped
into place only when complete (see :mod:`._store`): ``overwrite`` never loses the old store
to a failed or killed export. An interrupted export stays in its sibling; rerun with
``resume=True`` it continues there, skipping the chunks whose marker matches, and is
swapped in when done. ``resume`` refuses anything else, untouched. A remote store is
written in place and never replaced. Markers are removed at the end, and the NGFF metadata
is written last.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from typing import Any

import dask
import dask.array as da
import numpy as np

from .._paths import is_url
from ..errors import OutputError
from ._atomic import check_not_input, disk_full, disk_full_error
from ._bands import Progress, compute_in_order
from ._meta import ExportResult, OutputMetadata, band_grid, check_grid, rgb_grid
from ._pyramid import downsample_2x_any, pyramid_shapes
from ._store import (
    KEY,
    StorePlan,
    discard,
    finish,
    in_progress,
    open_destination,
    plan_store,
    store_fs,
)

__all__ = ["to_ome_zarr"]

MARKERS = ".minerva-dask"
RGB = (("Red", "FF0000"), ("Green", "00FF00"), ("Blue", "0000FF"))
AXES = ("c", "y", "x")  # the stored order, as named in the multiscales axes


@lru_cache(maxsize=64)
def _open_level(url: str, options_key: str, level: int, zarr_format: int, token: str) -> Any:
    """The zarr array of ``level``, opened once per process and export (``token``: an
    array cached for another export at the same path may have another shape)."""
    import zarr

    options = json.loads(options_key) or None
    return zarr.open_array(
        url,
        path=str(level),
        mode="r+",
        zarr_format=zarr_format,
        storage_options=options if is_url(url) else None,
    )


def _write_chunk(
    block: np.ndarray,
    url: str,
    options_key: str,
    zarr_format: int,
    level: int,
    row: int,
    col: int,
    offset: tuple[int, int],
    token: str,
) -> int:
    """Write one ``(y, x, 3)`` block at ``offset`` (y, x), then its completion marker."""
    array = _open_level(url, options_key, level, zarr_format, token)
    y0, x0 = offset
    array[:, y0 : y0 + block.shape[0], x0 : x0 + block.shape[1]] = np.moveaxis(block, 2, 0)
    fs, root = store_fs(url, json.loads(options_key))
    fs.pipe_file(f"{root}/{MARKERS}/{level}/{row}.{col}", token.encode())
    return 1


def _done_markers(fs: Any, root: str, level: int, token: str) -> set[tuple[int, int]]:
    folder = f"{root}/{MARKERS}/{level}"
    try:
        names = fs.find(folder)
    except FileNotFoundError:
        return set()
    if not names:
        return set()
    done = set()
    for name, body in fs.cat(names, on_error="omit").items():
        if body == token.encode():
            row, col = os.path.basename(name).split(".")
            done.add((int(row), int(col)))
    return done


def _level_metadata(
    shapes: list[tuple[int, int]], meta: OutputMetadata, version: str
) -> dict[str, Any]:
    px, py = meta.pixel_size_um or (1.0, 1.0)
    unit = {"unit": "micrometer"} if meta.pixel_size_um else {}
    datasets = [
        {
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, py * 2**level, px * 2**level]}
            ],
        }
        for level in range(len(shapes))
    ]
    multiscale = {
        "name": meta.name,
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", **unit},
            {"name": "x", "type": "space", **unit},
        ],
        "datasets": datasets,
        "metadata": {
            "method": "2x2 mean of the level above (odd edges repeated)",
            "description": meta.description(),
        },
    }
    if version == "0.4":
        multiscale["version"] = "0.4"
    omero = {
        "name": meta.name,
        "version": version,
        "rdefs": {"model": "color"},
        "channels": meta.omero_channels(),
    }
    return {"multiscales": [multiscale], "omero": omero}


def to_ome_zarr(
    image: Any,
    url: str | os.PathLike[str],
    *,
    version: str = "0.5",
    chunk: int | None = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    client: Any = None,
    prefetch: int = 2,
    progress: bool = False,
    compute_kwargs: dict[str, Any] | None = None,
) -> ExportResult:
    """Write ``image`` as a multiscale OME-Zarr at ``url`` (local path or fsspec URL).

    Parameters
    ----------
    image
        A :class:`~minerva_dask.Rendering`, or a dask/numpy ``(y, x, 3)`` uint8 array.
    version
        ``"0.5"`` (zarr v3, default) or ``"0.4"`` (zarr v2).
    chunk
        Chunk side in pixels (default: the image's dask chunk, made even).
    overwrite, resume
        ``overwrite``: replace an existing store once the new one is complete (a remote
        store is never replaced: delete it first). ``resume``: continue an interrupted
        export of the same render (chunks already written are skipped and counted); a
        store that is not one is refused, untouched. An interrupted local export with
        ``overwrite`` may be resumed without it: it was allowed to replace the target.
    client, prefetch
        A ``distributed.Client`` to compute on (default: the threaded scheduler), and how
        many rows of chunks may be in flight.
    progress
        Report tiles done, rate and time left on stderr.

    >>> import tempfile, minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,2048,1024&max_size=5000")
    >>> rgb = md.render(src, req, align="output", chunk_size=512)
    >>> result = md.to_ome_zarr(rgb, tempfile.mkdtemp() + "/crop.ome.zarr")
    >>> result.shape, result.levels
    ((1024, 2048), 3)
    """

    started = time.perf_counter()
    if version not in ("0.4", "0.5"):
        raise OutputError(f"OME-Zarr version must be 0.4 or 0.5, got {version!r}")
    url = os.fspath(url).rstrip("/")
    meta = OutputMetadata.of(image)
    check_not_input(url, meta.inputs)  # before anything is opened for writing
    options = dict(storage_options or {})
    grid = band_grid if meta.channels else rgb_grid  # raw planes, or a rendered RGB
    data, side = grid(image, chunk)  # one side for every level's chunks and blocks
    shapes = pyramid_shapes(data.shape[0], data.shape[1], side)
    token = f"{data.name}:{version}:{side}"
    fs, root = open_destination(url, options)
    plan = plan_store(url, fs, root, token, overwrite=overwrite, resume=resume)
    try:
        entry = in_progress(token, meta.provenance, overwrite)
        written, skipped = _write_store(
            data,
            side,
            shapes,
            plan,
            meta,
            version,
            entry,
            options,
            client,
            prefetch,
            progress,
            compute_kwargs,
        )
        finish(plan)
    except BaseException as exc:
        if disk_full(exc):  # the partial store holds the space: remove it; old store kept
            discard(plan)
            raise disk_full_error(url) from None
        raise  # an unfinished local export stays in its partial sibling, for resume
    size = sum(fs.du(root, total=False).values()) if not is_url(url) else 0
    return ExportResult(
        url,
        (data.shape[0], data.shape[1]),
        len(shapes),
        written,
        skipped,
        size,
        time.perf_counter() - started,
    )


def _write_store(
    data: da.Array,
    side: int,
    shapes: list[tuple[int, int]],
    plan: StorePlan,
    meta: OutputMetadata,
    version: str,
    entry: dict[str, Any],
    options: dict[str, Any],
    client: Any,
    prefetch: int,
    progress: bool,
    compute_kwargs: dict[str, Any] | None,
) -> tuple[int, int]:
    """Write every level into ``plan.work``, then its metadata: chunks written, skipped.

    A new store is created with ``entry`` (what it is, for a later resume) in its
    attributes, in the same write as the group itself, before any chunk."""
    import zarr

    url, fs, root, token = plan.work, plan.fs, plan.root, entry["token"]
    options_key = json.dumps(options, sort_keys=True)
    zarr_format = 3 if version == "0.5" else 2
    store_options = options if is_url(url) else None
    if plan.resume:
        group = zarr.open_group(url, mode="r+", storage_options=store_options)
    elif is_url(url):
        group = zarr.create_group(
            url, zarr_format=zarr_format, attributes={KEY: entry}, storage_options=store_options
        )
    else:  # made aside, then renamed: the partial store never exists without its entry
        fresh = f"{url}.new-{os.urandom(4).hex()}"
        try:
            zarr.create_group(fresh, zarr_format=zarr_format, attributes={KEY: entry})
            os.rename(fresh, url)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        group = zarr.open_group(url, mode="r+")
    planes = data.shape[2]  # 3 for a rendered RGB; the planes of a raw export
    for level, (height, width) in enumerate(shapes):
        if str(level) not in group:
            kwargs = (  # NGFF 0.5 requires dimension_names: the axes' names, in order
                {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
                if zarr_format == 2
                else {"dimension_names": AXES}
            )
            group.create_array(
                str(level),
                shape=(planes, height, width),
                chunks=(planes, side, side),
                dtype=data.dtype,
                fill_value=0,
                **kwargs,
            )
    total = sum(math.ceil(h / side) * math.ceil(w / side) for h, w in shapes)
    report = Progress(total, "OME-Zarr", enabled=progress)
    written = skipped = 0
    for level in range(len(shapes)):
        if level == 0:
            level_data = data
        else:
            above = da.from_zarr(
                url,
                component=str(level - 1),
                chunks=(planes, 2 * side, 2 * side),
                storage_options=options if is_url(url) else None,
            )
            above = above.transpose(1, 2, 0)
            level_data = above.map_blocks(
                downsample_2x_any,  # what downsample_2x gives for uint8
                dtype=data.dtype,
                chunks=(_halves(above.chunks[0]), _halves(above.chunks[1]), (planes,)),
            )
        stored = group[str(level)].chunks
        if tuple(stored) != (planes, side, side):
            raise RuntimeError(f"minerva-dask internal error: level {level} chunks {stored}")
        check_grid(level_data.chunks[:2], side, f"level {level} blocks")
        done = _done_markers(fs, root, level, f"{token}:{level}")
        skipped += len(done)
        report.advance(len(done))
        bands = _band_jobs(
            level_data, url, options_key, zarr_format, level, f"{token}:{level}", done
        )
        with contextlib.ExitStack() as stack:
            compute = None if client is not None else _bounded_compute(compute_kwargs, stack)
            for count in compute_in_order(bands, client=client, prefetch=prefetch, compute=compute):
                written += sum(count)
                report.advance(sum(count))
    group.attrs.update(
        {"ome": {"version": "0.5", **_level_metadata(shapes, meta, version)}}
        if version == "0.5"
        else _level_metadata(shapes, meta, version)
    )
    group.attrs[KEY] = {**meta.provenance, "state": "complete"}
    if fs.exists(f"{root}/{MARKERS}"):
        fs.rm(f"{root}/{MARKERS}", recursive=True)
    return written, skipped


def _bounded_compute(
    compute_kwargs: dict[str, Any] | None, stack: contextlib.ExitStack
) -> Callable[[Any], Any]:
    """How one band of writes is computed locally. On the threaded scheduler (dask's
    default for these delayed writes), on a pool
    of our own, shut down (running writes finished, queued ones cancelled) when ``stack``
    closes: dask raises a failed task's error at once while its other tasks still run,
    and a write landing after the clean-up would put files back into a removed store."""
    import dask.threaded
    from dask.base import get_scheduler

    kwargs = dict(compute_kwargs or {})
    if get_scheduler(scheduler=kwargs.get("scheduler")) not in (None, dask.threaded.get):
        return lambda job: dask.compute(job, **kwargs)[0]
    kwargs.pop("scheduler", None)
    workers = kwargs.pop("num_workers", None) or os.cpu_count() or 1
    pool = ThreadPoolExecutor(workers, thread_name_prefix="zarr-write")
    stack.callback(pool.shutdown, wait=True, cancel_futures=True)
    return lambda job: dask.compute(job, scheduler="threads", pool=pool, **kwargs)[0]


def _halves(chunks: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(math.ceil(c / 2) for c in chunks)


def _band_jobs(
    data: da.Array,
    url: str,
    options_key: str,
    zarr_format: int,
    level: int,
    token: str,
    done: set[tuple[int, int]],
) -> list[list[Any]]:
    """One job per row of chunks: delayed writes of the chunks not yet done."""
    rows, cols = data.chunks[0], data.chunks[1]
    y_offsets = np.cumsum((0, *rows[:-1]))
    x_offsets = np.cumsum((0, *cols[:-1]))
    jobs = []
    blocks = data.to_delayed(optimize_graph=True)
    write = dask.delayed(_write_chunk, pure=False)
    for row in range(len(rows)):
        job = [
            write(
                blocks[row, col, 0],
                url,
                options_key,
                zarr_format,
                level,
                row,
                col,
                (int(y_offsets[row]), int(x_offsets[col])),
                token,
            )
            for col in range(len(cols))
            if (row, col) not in done
        ]
        if job:
            jobs.append(job)
    return jobs
