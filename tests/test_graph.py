"""Whole renders through the lazy graph equal the independent reference renderer."""

from __future__ import annotations

import dask
import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.request import ChannelSetting, RenderRequest
from minerva_dask.sources.base import SourceBase
from tests.reference import (
    block_mean_level,
    independent_pyramid,
    level_for,
    reduction_for,
    render_reference,
)

# path, shown channels (0-based), windows, colours, z
CASES = {
    "cycif": (
        "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff",
        [0, 5, 47],
        [(300, 12000), (0, 65535), (2000, 2000)],
        [(0, 0, 1), (0, 1, 0), (1, 0, 0)],
        0,
    ),
    "colon-jpeg": (
        "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",
        [0, 1],
        [(10, 200), (0, 255)],
        [(0, 0, 1), (1, 0.5, 0)],
        0,
    ),
    "big-endian": (
        "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif",
        [0, 1, 2],
        [(0, 65535)] * 3,
        [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
        0,
    ),
    "int8-z": (
        "ome-tiff/multi-channel-z-series.ome.tif",
        [0, 2],
        [(-10, 90), (0, 50)],
        [(1, 1, 1), (1, 0, 1)],
        3,
    ),
    "page-pyramid": (
        "other-tiff/boxes-page-pyramid.tiff",
        [0, 1, 2],
        [(0, 255)] * 3,
        [(1, 0, 0), (0, 1, 0), (0, 0, 1)],
        0,
    ),
    "zarr-non-pow2": (
        "ome-zarr/exemplar-001.crop.image.ome.zarr",
        [0, 3],
        [(500, 30000), (0, 65535)],
        [(0, 0, 1), (1, 1, 0)],
        0,
    ),
    "zarr-float": (
        "ome-zarr/blobs_image_v05.ome.zarr",
        [0, 1],
        [(0.1, 0.9), (0, 1)],
        [(1, 0, 0), (0, 1, 1)],
        0,
    ),
    "interleaved": (
        "ome-tiff/interleaved-4sample-subifd.ome.tiff",
        [0, 3],
        [(0, 255), (10, 100)],
        [(1, 0, 0), (0, 1, 0)],
        0,
    ),
}


def _regions(width: int, height: int) -> dict[str, tuple[float, float, float, float]]:
    return {
        "inside": (width / 4, height / 5, width / 2, height / 3),
        "whole": (0, 0, width, height),
        "left-top": (-width / 3, -height / 4, width / 2, height / 2),
        "right-bottom": (width * 0.7, height * 0.6, width / 2, height / 2),
        "padded-square": (
            -width / 4,
            -height / 4,
            1.5 * max(width, height),
            1.5 * max(width, height),
        ),
        "outside": (width + 5, -height, 40, 30),
        "one-pixel": (width - 1, height - 1, 1, 1),
        "negative-origin": (-7.5, -3.25, width / 3, height),
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("max_size", [10_000, 60, 17])
def test_render_equals_the_reference(shared_data, case: str, max_size: int) -> None:
    name, channels, windows, colours, z = CASES[case]
    path = shared_data / name
    levels, downsamples = independent_pyramid(path, z=z)
    source = md.open_image(path)
    height, width = levels[0].shape[1:]
    settings = tuple(
        ChannelSetting(index=c, window=w, color=col)
        for c, w, col in zip(channels, windows, colours, strict=True)
    )
    for region_name, region in _regions(width, height).items():
        request = RenderRequest(channels=settings, region=region, max_size=max_size, z=z)
        level = level_for(downsamples, region[2], region[3], max_size)
        k = reduction_for(downsamples[level], region[2], region[3], max_size)
        (fx, fy) = downsamples[level]
        expected = render_reference(
            block_mean_level(levels[level][channels], k),
            (fx * k, fy * k),
            region,
            windows,
            colours,
            background=(221, 221, 221),
        )
        rendering = md.render(source, request, background="omero")
        assert rendering.level == level, region_name
        got = rendering.compute(scheduler="threads")
        assert got.shape == expected.shape, region_name
        assert max(got.shape[:2]) <= max_size, region_name
        np.testing.assert_array_equal(got, expected, err_msg=f"{case} {region_name}")


def test_generated_pyramids_equal_the_reference(tiny_ome_tiff, tiny_ome_zarr) -> None:
    for path in (tiny_ome_tiff, tiny_ome_zarr):
        levels, downsamples = independent_pyramid(path)
        source = md.open_image(path)
        for max_size in (2000, 500, 200):
            region = (-123.5, 77, 1000, 640)
            request = md.parse_request(
                f"/0/0/0/?c=1|500:20000$0000FF,-2,3|300:9000$FF8000"
                f"&region={','.join(map(str, region))}&max_size={max_size}"
            )
            level = level_for(downsamples, 1000, 640, max_size)
            k = reduction_for(downsamples[level], 1000, 640, max_size)
            (fx, fy) = downsamples[level]
            expected = render_reference(
                block_mean_level(levels[level][[0, 2]], k),
                (fx * k, fy * k),
                region,
                [(500, 20000), (300, 9000)],
                [(0, 0, 1), (1, 128 / 255, 0)],
            )
            np.testing.assert_array_equal(md.render(source, request).compute(), expected)


@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [1000, 512, 300, 64, 17, (97, 45)])
def test_pixels_do_not_depend_on_the_chunking(tiny_ome_tiff, chunk_size) -> None:
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request(
        "/0/0/0/?c=1|500:20000$0000FF,2|0:8000$00FF00,3|300:9000$FF0000"
        "&region=-100,-50,1300,820&max_size=5000"
    )
    baseline = md.render(source, request).compute()
    chunked = md.render(source, request, chunk_size=chunk_size)
    assert chunked.data.numblocks != (1, 1, 1) or chunk_size == 1000
    np.testing.assert_array_equal(chunked.compute(), baseline)


def test_2018_reference_through_a_tile_source(shared_data) -> None:
    """The minerva-2018 preset reproduces red_green_normalized.npy from the 256^2 tiles."""
    from tests.sources.npy_tiles import NpyTileSource

    source = NpyTileSource(shared_data / "reference" / "minerva-lib-2018-red-green")
    request = RenderRequest(
        channels=(
            ChannelSetting(index=0, window=(0, 65535), color=(1, 0, 0)),
            ChannelSetting(index=1, window=(0.006 * 65535, 0.024 * 65535), color=(0, 1, 0)),
        ),
        region=(0, 0, 1024, 1024),
        max_size=1024,
    )
    rendering = md.render(source, request, preset="minerva-2018")
    assert rendering.data.numblocks[:2] == (2, 2)  # 512-pixel chunks of 256-pixel tiles
    expected = np.load(
        shared_data / "reference/minerva-lib-2018-red-green/red_green_normalized.npy"
    )
    np.testing.assert_array_equal(rendering.compute(), expected)
    np.testing.assert_array_equal(
        md.render(source, request, preset="minerva-2018", chunk_size=256).compute(), expected
    )


def test_one_task_per_output_chunk_after_optimisation(tiny_ome_tiff) -> None:
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request("/0/0/0/?c=1,2,3&region=-300,0,1600,700&max_size=5000")
    data = md.render(source, request, chunk_size=256).data
    (optimised,) = dask.optimize(data)
    graph = dict(optimised.__dask_graph__())
    # Aliases only rename a fused task's key; a DataNode holds the shared reader object.
    work = [t for t in graph.values() if type(t).__name__ not in ("Alias", "DataNode")]
    assert len(work) == data.npartitions
    assert len(graph) <= 2 * data.npartitions + 1


def test_channel_arrays_are_the_raw_level_pixels(tiny_ome_zarr) -> None:
    levels, _ = independent_pyramid(tiny_ome_zarr)
    source = md.open_image(tiny_ome_zarr)
    request = md.parse_request("/0/0/0/?c=3,1&region=-10,0,500,300&max_size=5000")
    arrays = md.channel_arrays(source, request)
    assert list(arrays) == [0, 2]
    red, blue = dask.compute(arrays[2], arrays[0])
    np.testing.assert_array_equal(red[:, 10:], levels[0][2, 0:300, 0:490])
    assert not red[:, :10].any()
    np.testing.assert_array_equal(blue[:, 10:], levels[0][0, 0:300, 0:490])


def test_rendering_carries_its_provenance(tiny_ome_tiff) -> None:
    source = md.open_image(tiny_ome_tiff)
    rendering = md.render(source, md.parse_request("/0/0/0/?c=1&region=0,0,1100,700&max_size=300"))
    assert rendering.level == 2
    assert rendering.downsample == (4.0, 4.0)
    assert rendering.pixel_size_um == pytest.approx((2.6, 2.6))
    assert np.asarray(rendering).shape == (175, 275, 3)


class _CountingReads:
    """Wraps a source and counts its reads."""

    def __init__(self, source) -> None:
        self.inner, self.info, self.reads = source, source.info, 0

    def read_region(self, *args, **kwargs):
        self.reads += 1
        return self.inner.read_region(*args, **kwargs)

    def close(self) -> None:
        self.inner.close()


def test_bad_render_options_are_rejected_before_any_read(tiny_ome_tiff) -> None:
    source = _CountingReads(md.open_image(tiny_ome_tiff))
    request = md.parse_request("/0/0/0/?c=1&region=0,0,10,10")
    with pytest.raises(md.RequestError, match="unknown preset"):
        md.render(source, request, preset="vips")
    with pytest.raises(md.RequestError, match="gamma"):
        md.render(source, request, gamma=0)
    with pytest.raises(md.RequestError, match="hexadecimal"):
        md.render(source, request, background="#GGG")
    with pytest.raises(md.RequestError, match="level 9 does not exist"):
        md.render(source, request, level=9)
    lut = md.parse_request("/0/0/0/?c=1|0:9$cool.lut&region=0,0,10,10")
    with pytest.raises(md.RequestError, match=r"lookup table 'cool\.lut' can only be rendered"):
        md.render(source, lut)
    family = md.parse_request(
        '/0/0/0/?c=1&maps=[{"quantization":{"family":"logarithmic"}}]&region=0,0,10,10'
    )
    with pytest.raises(md.RequestError, match="only rendered by an OMERO server"):
        md.render(source, family)
    assert source.reads == 0
    md.render(source, request).compute(scheduler="sync")  # the counter counts
    assert source.reads > 0


class _BrokenChannel(SourceBase):
    """Wraps a source; channel ``broken`` (0-based) cannot be read."""

    def __init__(self, source, broken: int) -> None:
        self.inner, self.broken, self.info = source, broken, source.info

    def channels_per_read(self, level):
        return 1

    def read_region(self, level, rect, channels, *, z=0, t=0):
        if self.broken in channels:
            raise md.TileReadError(f"channel {self.broken + 1} tile is corrupt")
        return self.inner.read_region(level, rect, channels, z=z, t=t)


def test_reading_channels_ahead_gives_the_same_pixels(tiny_ome_tiff) -> None:
    from concurrent.futures import ThreadPoolExecutor

    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request("/0/0/0/?c=1,2,3&region=-300,0,1600,700&max_size=5000")
    rendering = md.render(source, request, chunk_size=256)
    expected = rendering.compute()
    rows, cols = (len(c) for c in rendering.chunks[:2])
    with ThreadPoolExecutor(4) as reads:
        for ahead in (1, 2, 5):
            got = np.concatenate(
                [
                    np.concatenate(
                        [
                            rendering.compute_chunk(r, c, reads=reads, ahead=ahead)
                            for c in range(cols)
                        ],
                        axis=1,
                    )
                    for r in range(rows)
                ]
            )
            np.testing.assert_array_equal(got, expected)


def test_a_read_failing_ahead_surfaces_in_its_chunk(tiny_ome_tiff) -> None:
    from concurrent.futures import ThreadPoolExecutor

    source = _BrokenChannel(md.open_image(tiny_ome_tiff), broken=2)
    rendering = md.render(source, md.parse_request("/0/0/0/?c=1,2,3&region=0,0,500,500"))
    with ThreadPoolExecutor(2) as reads, pytest.raises(md.TileReadError, match="channel 3"):
        rendering.compute_chunk(0, 0, reads=reads, ahead=2)


def test_a_chunk_too_big_to_hold_is_refused_before_any_read(tiny_ome_tiff) -> None:
    # chunk=10**9 was an unexpected MemoryError (2.6 EiB) when the export wrote it
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request("/0/0/0/?c=1|0:65535$FF0000&region=0,0,300,200")
    with pytest.raises(md.RequestError, match=r"within 1\.\.16384 pixels, got 1000000000"):
        md.render(source, request, chunk_size=10**9)
