"""Sharded OME-Zarr (zarr v3 sharding, NGFF 0.5): objects, resume per shard, S3, progress."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import zarr

import minerva_dask as md
from minerva_dask.exports import to_ome_zarr
from minerva_dask.writers._progress import Progress
from tests.failing_source import FailingSource
from tests.reference import expected_levels
from tests.writers.test_export import REQUEST, zarr_levels


def _objects(store) -> dict[str, int]:
    """Stored chunk or shard objects per level (``{level}/c/...`` files)."""
    counts: dict[str, int] = {}
    for folder, _, files in os.walk(store):
        rel = os.path.relpath(folder, store).split(os.sep)
        if len(rel) >= 2 and rel[1] == "c":
            counts[rel[0]] = counts.get(rel[0], 0) + len(files)
    return counts


@pytest.mark.slow
def test_a_sharded_level_is_one_object_per_shard_and_pixels_are_the_render(
    tiny_ome_tiff, tmp_path
) -> None:
    source = md.open_image(tiny_ome_tiff)
    rendering = md.render(source, md.parse_request(REQUEST), align="output", chunk_size=128)
    expected = expected_levels(md.render(source, rendering.request).compute(), 5)
    # 1400 x 900 px in 128-px chunks: 11 x 8 = 88 chunks at level 0, 24 + 6 + 2 + 1 below
    sharded = to_ome_zarr(rendering, tmp_path / "s.ome.zarr")  # 0.5: 4 x 4 chunks a shard
    plain = to_ome_zarr(rendering, tmp_path / "p.ome.zarr", shard=1)
    assert _objects(tmp_path / "s.ome.zarr") == {"0": 3 * 2, "1": 2, "2": 1, "3": 1, "4": 1}
    # unsharded: one object per chunk, less the all-black ones (zarr skips fill values)
    assert _objects(tmp_path / "p.ome.zarr") == {"0": 63, "1": 20, "2": 5, "3": 2, "4": 1}
    assert sharded.chunks_written == plain.chunks_written == 88 + 24 + 6 + 2 + 1
    for path in ("s.ome.zarr", "p.ome.zarr"):
        for got, want in zip(zarr_levels(tmp_path / path), expected, strict=True):
            np.testing.assert_array_equal(got, want)
    level0 = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="r")["0"]
    assert level0.chunks == (3, 128, 128) and level0.shards == (3, 512, 512)


def test_an_interrupted_sharded_export_resumes_per_shard(tiny_ome_tiff, tmp_path) -> None:
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request(REQUEST)
    # 256-px chunks, 2 x 2 per shard: shard rows start at y = -80 and 432; reads from
    # y >= 600 fail, so the second row of shards fails and the first is complete
    failing = md.render(FailingSource(source, 600), request, align="output", chunk_size=256)
    target = tmp_path / "r.ome.zarr"
    with pytest.raises(OSError, match="the network went away"):
        to_ome_zarr(failing, target, shard=2, prefetch=1)
    partial = tmp_path / ".r.ome.zarr.partial"
    marked = {p.name for p in (partial / ".minerva-dask" / "0").iterdir()}
    assert marked == {"0.0", "0.1", "0.2"}  # whole shards only
    with pytest.raises(md.OutputError, match=r"resume with shard=2 \(CLI: --shard 2\)"):
        to_ome_zarr(md.render(source, request, align="output", chunk_size=256), target, resume=True)
    healthy = md.render(source, request, align="output", chunk_size=256)
    result = to_ome_zarr(healthy, target, resume=True, shard=2)
    assert result.chunks_skipped == 2 * 6  # the chunks of the three shards done before
    assert result.chunks_written + result.chunks_skipped == 4 * 6 + 2 * 3 + 1 * 2 + 1
    expected = expected_levels(md.render(source, request).compute(), 4)
    for got, want in zip(zarr_levels(target), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not partial.exists()


def test_shard_options_are_checked_before_writing(rendering, tmp_path) -> None:
    with pytest.raises(md.OutputError, match=r"0\.4 cannot be sharded"):
        to_ome_zarr(rendering, tmp_path / "a.ome.zarr", version="0.4", shard=2)
    with pytest.raises(md.OutputError, match="shard"):
        to_ome_zarr(rendering, tmp_path / "a.ome.zarr", shard=0)
    with pytest.raises(md.OutputError, match="applies to OME-Zarr"):
        md.crop(REQUEST, tmp_path / "a.ome.tif", image=rendering.source, shard=2)
    assert list(tmp_path.iterdir()) == []


def test_a_shard_wider_than_the_image_is_one_shard_of_the_whole_level(rendering, tmp_path) -> None:
    # 1400 x 900 px in 256-px chunks: 6 x 4 chunks; a shard of 10**9 chunks a side once
    # allocated its whole index (an unexpected MemoryError, or 16 MB a shard at 1000)
    to_ome_zarr(rendering, tmp_path / "s.ome.zarr", shard=10**9)
    level0 = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="r")["0"]
    assert level0.shards == (3, 6 * 256, 6 * 256)
    assert _objects(tmp_path / "s.ome.zarr") == {str(n): 1 for n in range(4)}
    expected = expected_levels(rendering.compute(), 4)
    for got, want in zip(zarr_levels(tmp_path / "s.ome.zarr"), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.fixture
def rendering(tiny_ome_tiff):
    return md.render(
        md.open_image(tiny_ome_tiff), md.parse_request(REQUEST), align="output", chunk_size=256
    )


@pytest.mark.slow
def test_sharded_ome_zarr_goes_to_s3_from_the_workers(
    rendering, moto_server, cluster_client, tmp_path
):
    """Written by the cluster's worker processes straight to the bucket (credentials in
    the storage options, never in the store), equal to the threaded local export."""
    s3fs = pytest.importorskip("s3fs")
    options = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": moto_server},
    }
    fs = s3fs.S3FileSystem(**options)
    fs.makedirs("cluster-out", exist_ok=True)
    url = "s3://cluster-out/slide.ome.zarr"
    result = to_ome_zarr(rendering, url, storage_options=options, client=cluster_client)
    assert result.levels == 4
    to_ome_zarr(rendering, tmp_path / "local.ome.zarr")  # threaded, local disk
    local = zarr_levels(tmp_path / "local.ome.zarr")
    group = zarr.open_group(url, mode="r", storage_options=options)
    for level, want in enumerate(local):
        np.testing.assert_array_equal(np.moveaxis(group[str(level)][...], 0, 2), want)
    keys = fs.find("cluster-out/slide.ome.zarr")
    assert not [k for k in keys if ".minerva-dask" in k]  # markers removed at the end
    assert sum("/0/c/" in k for k in keys) == 2  # 1400 x 900: two shards of 1024 px
    for key in (k for k in keys if k.endswith("zarr.json")):  # no credential in metadata
        assert b"testing" not in fs.cat_file(key)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_estimates_from_tiles_done_not_from_start_up(monkeypatch) -> None:
    """A cluster that takes 5 s to start, then 10 tiles/s: the first estimate is not
    ``-`` forever nor thousands of seconds; resumed tiles make no rate of their own."""
    import minerva_dask.writers._progress as progress

    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
    out = io.StringIO()
    report = Progress(300, "OME-Zarr", stream=out, every_s=0.0)
    clock.now = 5.0  # start-up, graph building, first tiles' latency
    report.advance(1)
    assert "estimating time left" in out.getvalue().splitlines()[-1]
    for _ in range(20):  # 10 tiles/s from then on
        clock.now += 0.1
        report.advance(1)
    line = out.getvalue().splitlines()[-1]
    assert "21/300 tiles, 10.0 tiles/s, 28 s left" in line, line
    resumed = Progress(1000, "OME-Zarr", stream=io.StringIO(), every_s=0.0)
    resumed.skip(900)
    clock.now += 1.0
    resumed.advance(10)
    assert resumed.rate() is None  # 900 resumed tiles are not 900 tiles/s
    clock.now += 2.0
    resumed.advance(10)
    assert resumed.rate() == pytest.approx(5.0)
    assert "(900 resumed)" in resumed.line()


@pytest.mark.slow
def test_an_interrupted_export_to_s3_is_no_image_until_resumed_shard_by_shard(
    tiny_ome_tiff, moto_server
) -> None:
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": moto_server}}
    fs = s3fs.S3FileSystem(**options)
    fs.makedirs("resume-out", exist_ok=True)
    url = "s3://resume-out/r.ome.zarr"
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request(REQUEST)
    failing = md.render(FailingSource(source, 600), request, align="output", chunk_size=256)
    with pytest.raises(OSError, match="the network went away"):
        to_ome_zarr(failing, url, shard=2, prefetch=1, storage_options=options)
    attrs = dict(zarr.open_group(url, mode="r", storage_options=options).attrs)
    assert "ome" not in attrs and attrs["minerva-dask"]["state"] == "in-progress"
    with pytest.raises(md.OutputError, match="exists"):  # never replaced, nor continued unasked
        to_ome_zarr(failing, url, shard=2, storage_options=options)
    healthy = md.render(source, request, align="output", chunk_size=256)
    result = to_ome_zarr(healthy, url, shard=2, resume=True, storage_options=options)
    assert result.chunks_skipped == 2 * 6  # the three shards of the first row
    expected = expected_levels(md.render(source, request).compute(), 4)
    group = zarr.open_group(url, mode="r", storage_options=options)
    assert group.attrs["ome"]["multiscales"][0]["datasets"][3]["path"] == "3"
    for level, want in enumerate(expected):
        np.testing.assert_array_equal(np.moveaxis(group[str(level)][...], 0, 2), want)
    fs.invalidate_cache()
    assert not fs.exists("resume-out/r.ome.zarr/.minerva-dask")
