"""Multiscale OME-Zarr output (NGFF 0.5 on zarr v3 by default, 0.4 on zarr v2).

The rendered RGB is stored as ``(c, y, x)`` uint8, channels Red, Green, Blue, in chunks
of one side (the side of the dask blocks that render level 0, checked before writing).
NGFF 0.5 stores are sharded by default (zarr v3 sharding): ``shard x shard`` chunks per
stored object, so a 65,536-pixel level is 256 objects rather than 4,096; 0.4 stores are
not. Each stored object (a shard, or a chunk when unsharded) is written whole by exactly
one task, which then leaves a completion marker (see :mod:`._zarr_units`). Level
``l + 1`` is the 2 x 2 mean of level ``l`` read back from the store.

A local export is written into a hidden sibling, ``.{name}.partial``, marked in its
attributes as an unfinished export of this render before any chunk is written, and swapped
into place only when complete (see :mod:`._store`): ``overwrite`` never loses the old store
to a failed or killed export. An interrupted export stays in its sibling; rerun with
``resume=True`` it continues there, skipping the shards (or chunks) whose marker matches,
and is swapped in when done. ``resume`` refuses anything else, untouched. A remote store
(``s3://``...) is written in place by the workers and never replaced: until the export is
complete its root attributes say ``in-progress`` and hold no NGFF metadata, so no NGFF
reader takes it for an image. Markers are removed at the end, and the NGFF metadata is
written last.

One export of a local store at a time: ``.{name}.lock`` beside it is held from the first
look at the partial sibling to the swap (see :func:`._atomic.output_lock`; on a
``distributed`` cluster the workers write, but this process drives the export and holds
the lock throughout); a second export or resume of it is refused at once, untouched. A
partial store removed or replaced mid-export is refused, never swapped in. A remote
store cannot be locked (no ``flock`` on an object store): two exports to one ``s3://``
store at once are not detected.
"""

from __future__ import annotations

import contextlib
import glob
import json
import math
import os
import shutil
import time
from typing import Any

from .._memory import keep_heap_flat
from .._paths import is_url
from ..errors import BlockMismatchError, OutputError
from ._atomic import (
    FolderWatch,
    check_not_input,
    disk_full,
    disk_full_error,
    output_lock,
)
from ._meta import ExportResult, OutputMetadata, band_grid, check_grid, rgb_grid
from ._ngff import AXES, ngff_attributes
from ._progress import Progress
from ._pyramid import pyramid_shapes
from ._runner import Runner
from ._shard_codec import check_layout, codec_options
from ._store import (
    KEY,
    StorePlan,
    discard,
    exists_error,
    finish,
    in_progress,
    open_destination,
    plan_store,
)
from ._zarr_units import MARKERS, Target, done_markers, level_jobs, unit_tiles

__all__ = ["DEFAULT_SHARD", "write_ome_zarr"]

# Chunks per shard side of an NGFF 0.5 export (bench/RESULTS.md, "OME-Zarr shards"):
# 16 chunks per object; a 65,536-pixel level of 1,024-pixel chunks is 256 objects.
DEFAULT_SHARD = 4


def _shard_of(shard: int | None, version: str) -> int:
    if shard is None:
        return DEFAULT_SHARD if version == "0.5" else 1
    if isinstance(shard, bool) or not isinstance(shard, int) or shard < 1:
        raise OutputError(
            f"shard (CLI: --shard) must be a number of chunks per shard side >= 1, got {shard!r}"
        )
    if shard > 1 and version != "0.5":
        raise OutputError(
            f"OME-Zarr {version} cannot be sharded (sharding is zarr v3, NGFF 0.5); "
            "use version 0.5 (CLI: --zarr-version 0.5) or shard=1 (CLI: --shard 1)"
        )
    return shard


def write_ome_zarr(
    image: Any,
    url: str | os.PathLike[str],
    *,
    runner: Runner,
    version: str = "0.5",
    chunk: int | None = None,
    shard: int | None = None,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    resume: bool = False,
    prefetch: int = 2,
    progress: bool = False,
) -> ExportResult:
    """Write ``image`` as a multiscale OME-Zarr at ``url``, its writes run by ``runner``
    (``prefetch`` rows of units in flight); the writer of :func:`minerva_dask.to_ome_zarr`
    (parameters there)."""
    started = time.perf_counter()
    keep_heap_flat()  # freed chunks go back to the system: memory flat in slide size
    if version not in ("0.4", "0.5"):
        raise OutputError(f"OME-Zarr version must be 0.4 or 0.5, got {version!r}")
    url = os.fspath(url).rstrip("/")
    meta = OutputMetadata.of(image)
    check_not_input(url, meta.inputs)  # before anything is opened for writing
    options = dict(storage_options or {})
    shard = _shard_of(shard, version)
    grid = band_grid if meta.channels else rgb_grid  # raw planes, or a rendered RGB
    data, side = grid(image, chunk, target=url)  # one side for every level's chunks and blocks
    shapes = pyramid_shapes(data.shape[0], data.shape[1], side)
    # a shard never spans more chunks than level 0 has along its longer side: a bigger
    # one holds nothing more, only a bigger index (16 bytes per chunk slot, squared)
    shard = min(shard, max(math.ceil(n / side) for n in shapes[0]))
    token = f"{data.name}:{version}:{side}" + (f":shard{shard}" if shard > 1 else "")
    # an existing store without overwrite/resume: refused as that, before "not writable"
    refused = None if (overwrite or resume) else exists_error(url)
    fs, root = open_destination(url, options, exists_error=refused)
    # one export of a local store at a time, from the first look at it to the swap
    lock = contextlib.nullcontext() if is_url(url) else output_lock(root, shown=url)
    with lock, FolderWatch() as watch:
        plan = plan_store(url, fs, root, token, overwrite=overwrite, resume=resume)
        try:
            entry = in_progress(token, meta.provenance, overwrite)
            written, skipped = _write_store(
                data,
                side * shard,
                side,
                shapes,
                plan,
                meta,
                version,
                entry,
                watch,
                options,
                runner,
                prefetch,
                progress,
            )
            if plan.work != plan.target and (gone := watch.gone(url)):
                raise gone
            finish(plan)
        except BaseException as exc:
            if disk_full(exc):  # the partial store holds the space: remove it; old store kept
                discard(plan)
                raise disk_full_error(url) from None
            if isinstance(exc, BlockMismatchError) and not plan.resume:
                discard(plan)  # a resume would fail the same way: no partial left to refuse
                raise
            gone = plan.work != plan.target and isinstance(exc, Exception)
            if gone and (error := watch.gone(url)):
                raise error from None  # not the KeyError of a level it no longer finds
            if is_url(url) and type(exc).__module__.split(".")[0] in ("botocore", "aiobotocore"):
                text = (str(exc).splitlines() or [""])[0]  # the store's endpoint went away
                raise OutputError(
                    f"cannot write {url}: {type(exc).__name__}: {text}; the unfinished export "
                    "stays there, marked in-progress: rerun with resume=True (CLI: --resume)"
                ) from None
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
    data: Any,
    unit: int,
    side: int,
    shapes: list[tuple[int, int]],
    plan: StorePlan,
    meta: OutputMetadata,
    version: str,
    entry: dict[str, Any],
    watch: FolderWatch,
    options: dict[str, Any],
    runner: Runner,
    prefetch: int,
    progress: bool,
) -> tuple[int, int]:
    """Write every level into ``plan.work``, then its metadata: chunks written, skipped.

    A new store is created with ``entry`` (what it is, for a later resume) in its
    attributes, in the same write as the group itself, before any chunk; ``watch`` then
    watches the local folder written (see :class:`._atomic.FolderWatch`)."""

    url, fs, root = plan.work, plan.fs, plan.root
    zarr_format = 3 if version == "0.5" else 2
    target = Target(
        url, json.dumps(options, sort_keys=True), zarr_format, entry["token"], side, unit
    )
    group = _open_group(url, plan, zarr_format, entry, options)
    if not is_url(url):
        watch.watch(url)  # a store removed or replaced from here on is refused
    for level, (height, width) in enumerate(shapes):
        if str(level) not in group:
            kwargs: dict[str, Any] = (  # NGFF 0.5 requires dimension_names: the axes' names
                {"chunk_key_encoding": {"name": "v2", "separator": "/"}}
                if zarr_format == 2
                else {"dimension_names": AXES}
            )
            if unit != side:  # shards encoded by _shard_codec: its codecs, declared
                kwargs.update(shards=(data.shape[2], unit, unit), **codec_options())
            group.create_array(
                str(level),
                shape=(data.shape[2], height, width),
                chunks=(data.shape[2], side, side),
                dtype=data.dtype,
                fill_value=0,
                **kwargs,
            )
    total = sum(math.ceil(h / side) * math.ceil(w / side) for h, w in shapes)
    report = Progress(total, "OME-Zarr", enabled=progress)
    written = skipped = 0
    check_grid(data.chunks[:2], side, "level 0 blocks")
    for level, shape in enumerate(shapes):
        array = group[str(level)]
        stored = (tuple(array.chunks), getattr(array, "shards", None) or tuple(array.chunks))
        if stored != ((data.shape[2], side, side), (data.shape[2], unit, unit)):
            raise RuntimeError(f"minerva-dask internal error: level {level} chunks {stored}")
        if unit != side:
            check_layout(array, side, unit)
        done = done_markers(fs, root, level, target.token)
        tiles = sum(unit_tiles(shape, target, row, col) for row, col in done)
        skipped += tiles
        report.skip(tiles)
        jobs = level_jobs(data, target, level, shape, done)
        # closed before anything is cleaned up: no write lands in a removed store
        with contextlib.closing(
            runner.in_order(jobs, prefetch=prefetch, name="zarr-write")
        ) as done:
            for count in done:
                written += sum(count)
                report.advance(sum(count))
    group.attrs.update(ngff_attributes(shapes, meta, version))
    group.attrs[KEY] = {**meta.provenance, "state": "complete"}
    if fs.exists(f"{root}/{MARKERS}"):
        fs.rm(f"{root}/{MARKERS}", recursive=True)
    return written, skipped


def _open_group(
    url: str, plan: StorePlan, zarr_format: int, entry: dict[str, Any], options: dict[str, Any]
) -> Any:
    """The store's group: opened to resume, else created with ``entry`` in its attributes."""
    import zarr

    store_options = options if is_url(url) else None
    if plan.resume:
        return zarr.open_group(url, mode="r+", storage_options=store_options)
    if is_url(url):
        return zarr.create_group(
            url, zarr_format=zarr_format, attributes={KEY: entry}, storage_options=store_options
        )
    for stale in glob.glob(glob.escape(url) + ".new-*"):  # a stopped run's (zarr's writes
        shutil.rmtree(stale, ignore_errors=True)  # in flight outlive its clean-up); under
    fresh = f"{url}.new-{os.urandom(4).hex()}"  # the output's lock: nobody else's. Made
    try:  # aside, then renamed: the partial store never exists without its entry
        zarr.create_group(fresh, zarr_format=zarr_format, attributes={KEY: entry})
        os.rename(fresh, url)
    except BaseException:
        shutil.rmtree(fresh, ignore_errors=True)
        raise
    return zarr.open_group(url, mode="r+")
