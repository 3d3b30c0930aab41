"""Many threads reading one open image get exactly what one thread reads.

Every level, channel and plane of every sample image is read tile by tile by 16 threads
at once (a thread pool, then dask's threaded scheduler), from a freshly opened source
each round so that first-use work (loading IFDs, building tifffile's decoders) races
too, and compared byte for byte with a single-threaded read.

To make a race likely within a fast test, every seek of a tifffile file handle gives
the GIL away before returning, and the interpreter switches threads often: a read that
seeks and then reads, unguarded or guarded by another lock than tifffile's, then has
another thread's seek land in between (JPEG tiles then start inside another tile,
uncompressed ones read another tile's pixels).
"""

from __future__ import annotations

import itertools
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import dask
import numpy as np
import pytest
import tifffile

import minerva_dask as md
from minerva_dask.geometry import Rect

pytestmark = pytest.mark.slow  # many threads over every sample image

SAMPLES = [
    "edge-cases/ome-misdeclared-samples.ome.tiff",
    "edge-cases/ome-sizec-mismatch.ome.tiff",  # tiled levels and a strip level: both paths
    "ome-tiff/4ch-uint16-64x64.ome.tif",
    "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",  # JPEG tiles: the reported race
    "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff",
    "ome-tiff/interleaved-4sample-subifd.ome.tiff",
    "ome-tiff/multi-channel-deflate.ome.tif",
    "ome-tiff/multi-channel-z-series.ome.tif",
    "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif",
    "other-tiff/CMU-1-Small-Region.svs",
    "other-tiff/boxes-page-pyramid.tiff",
    "other-tiff/small_vectra.qptiff",
    "ome-zarr/arange-v0.4.zarr",
    "ome-zarr/arange-v0.5.zarr",
    "ome-zarr/binary-2ch-v0.5.zarr",
    "ome-zarr/bioformats2raw-layout/data.zarr",
    "ome-zarr/blobs_image_v04.ome.zarr",
    "ome-zarr/blobs_image_v05.ome.zarr",
    "ome-zarr/exemplar-001.crop.image.ome.zarr",
    "ome-zarr/exemplar-001.crop.segmentations.ome.zarr",
]
THREADS = 16
ROUNDS = 3


@pytest.fixture
def racy_seeks(monkeypatch):
    """Seeks that yield the GIL, and frequent thread switches, for this test only."""
    seek = tifffile.FileHandle.seek
    count = itertools.count()

    def yielding_seek(self, offset, whence=0):
        result = seek(self, offset, whence)
        if next(count) % 4 == 0:  # every seek would make strip-by-strip reads slow
            time.sleep(0)  # let another thread run between this seek and the read after it
        return result

    monkeypatch.setattr(tifffile.FileHandle, "seek", yielding_seek)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(interval)


def _open(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the edge cases warn about their metadata
        return md.open_image(path)


def _jobs(info):
    """(level, rect, z, t) of every tile of every level, first and last z and t."""
    for level, spec in enumerate(info.levels):
        for y in range(0, spec.height, spec.tile_height):
            for x in range(0, spec.width, spec.tile_width):
                width = min(spec.tile_width, spec.width - x)
                rect = Rect(x, y, width, min(spec.tile_height, spec.height - y))
                for z in sorted({0, info.size_z - 1}):  # the first and last plane
                    for t in sorted({0, info.size_t - 1}):
                        yield level, rect, z, t


def _read(source, job, channels):
    level, rect, z, t = job
    return source.read_region(level, rect, channels, z=z, t=t)


@pytest.mark.parametrize("name", SAMPLES)
def test_many_threads_read_what_one_thread_reads(shared_data, name, racy_seeks) -> None:
    path = shared_data / name
    source = _open(path)
    jobs = list(_jobs(source.info))
    channels = list(range(source.info.size_c))[:4]  # 48 strip-stored channels: too slow
    # single channels too (TIFF pages are read apart): the first and the last
    singles = [[c] for c in (0, source.info.size_c - 1)] if source.info.size_c > 1 else []
    work = [(job, chans) for job in jobs for chans in [channels, *singles]]
    source.close()
    expected = [_read(source, job, chans) for job, chans in work]  # one thread
    assert all(block.size for block in expected)
    repeats = max(1, 16 // len(work))  # small images: the same tiles asked many times
    for _ in range(ROUNDS):
        source.close()  # reopen: IFD loading and decoder building race as well
        order = list(range(len(work))) * repeats
        with ThreadPoolExecutor(THREADS) as pool:
            got = list(pool.map(lambda i: _read(source, *work[i]), order))
        for i, block in zip(order, got, strict=True):
            np.testing.assert_array_equal(block, expected[i], err_msg=f"{name} {work[i]}")
    source.close()
    tasks = [dask.delayed(_read)(source, job, chans) for job, chans in work] * repeats
    got = dask.compute(*tasks, scheduler="threads", num_workers=THREADS)
    for i, block in enumerate(got):
        np.testing.assert_array_equal(block, expected[i % len(work)], err_msg=f"{name} dask")
