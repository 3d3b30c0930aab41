"""Pyramids stored as one TIFF series per level read as one image with those levels."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

import minerva_dask as md
from minerva_dask.geometry import Rect
from minerva_dask.request import ChannelSetting, RenderRequest
from tests.reference import block_mean_level, level_for, reduction_for, render_reference
from tests.sources.contract import unpickled

SIZES = [(1333, 999), (666, 499), (333, 249)]
WINDOWS = [(0, 40000), (1000, 60000), (500, 30000)]
COLOURS = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]


def _write(path, sizes, *, ome: bool, tiled: bool, dtypes=None) -> list[np.ndarray]:
    rng = np.random.default_rng(15)
    arrays = []
    with tifffile.TiffWriter(path, ome=ome) as writer:
        for i, (width, height) in enumerate(sizes):
            dtype = (dtypes or {}).get(i, np.uint16)
            data = rng.integers(0, np.iinfo(dtype).max, (3, height, width), dtype=dtype)
            layout = {"tile": (128, 128)} if tiled else {"rowsperstrip": 64}
            writer.write(data, photometric="minisblack", metadata={"axes": "CYX"}, **layout)
            arrays.append(data)
    return arrays


@pytest.mark.parametrize("tiled", [True, False], ids=["tiled", "strips"])
@pytest.mark.parametrize("ome", [True, False], ids=["ome", "plain"])
def test_series_per_level_pyramid_renders_each_level_like_the_reference(tmp_path, ome, tiled):
    path = tmp_path / ("levels.ome.tif" if ome else "levels.tif")
    arrays = _write(path, SIZES, ome=ome, tiled=tiled)
    source = md.open_image(path)
    assert [(lv.width, lv.height) for lv in source.info.levels] == SIZES
    downsamples = [(1333 / w, 999 / h) for w, h in SIZES]
    settings = tuple(ChannelSetting(index=c, window=WINDOWS[c], color=COLOURS[c]) for c in range(3))
    region = (-20, 10, 1333, 999)
    for max_size, level in ((2000, 0), (673, 1), (340, 2)):
        request = RenderRequest(channels=settings, region=region, max_size=max_size)
        assert level_for(downsamples, region[2], region[3], max_size) == level
        k = reduction_for(downsamples[level], region[2], region[3], max_size)
        fx, fy = downsamples[level]
        expected = render_reference(
            block_mean_level(arrays[level], k), (fx * k, fy * k), region, WINDOWS, COLOURS
        )
        rendering = md.render(source, request)
        assert rendering.level == level
        got = rendering.compute(scheduler="threads")
        assert max(got.shape[:2]) <= max_size
        np.testing.assert_array_equal(got, expected, err_msg=f"max_size={max_size}")
    rebuilt = unpickled(source)  # as a dask worker gets it: its own handle
    np.testing.assert_array_equal(
        rebuilt.read_region(2, Rect(300, 200, 33, 49), [0, 2]), arrays[2][[0, 2], 200:249, 300:]
    )


def test_a_following_series_of_another_dtype_is_not_a_level(tmp_path) -> None:
    path = tmp_path / "thumb.tif"
    _write(path, SIZES[:2], ome=False, tiled=True, dtypes={1: np.uint8})
    assert [(lv.width, lv.height) for lv in md.open_image(path).info.levels] == SIZES[:1]


def test_a_smaller_series_that_is_not_one_level_below_is_refused_in_one_line(tmp_path) -> None:
    path = tmp_path / "odd.tif"
    _write(path, [(1333, 999), (666, 200)], ome=False, tiled=True)
    with pytest.raises(md.SourceError) as info:
        md.open_image(path)
    message = str(info.value)
    assert "series 1 (666 x 200)" in message and "series_levels=False" in message
    assert "\n" not in message
    alone = md.open_image(path, series_levels=False)
    assert [(lv.width, lv.height) for lv in alone.info.levels] == [(1333, 999)]
