"""The benchmark's five cases, eight times smaller, equal the reference render, PNG included.

Every optimisation measured by ``bench/peers.py`` must keep the pixels: this renders the
same cases (same channels, windows, colours, region and level choice, on the same
synthetic tissue at 1/8 scale with 128 px tiles) through ``md.crop`` to a PNG and compares
the decoded file with the independent reference renderer.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from bench.peers import CASES, COLOURS, WINDOW, request_url, scaled_case, write_pyramid
from tests.reference import independent_pyramid, level_for, render_reference

pytestmark = pytest.mark.slow  # the bench cases, scaled down

SCALE = 8


@pytest.fixture(scope="module")
def pyramids(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("bench-cases")
    return {key: write_pyramid(folder / f"{key}.ome.tif", key, SCALE) for key in ("8ch", "48ch")}


@pytest.mark.parametrize("case", list(CASES))
def test_benchmark_case_png_equals_the_reference(case, pyramids, tmp_path) -> None:
    key, channels, region, max_size = scaled_case(case, SCALE)
    levels, downsamples = independent_pyramid(pyramids[key])
    level = level_for(downsamples, region[2], region[3], max_size)
    colours = [
        tuple(int(COLOURS[c % 8][i : i + 2], 16) / 255 for i in (0, 2, 4)) for c in range(channels)
    ]
    expected = render_reference(
        levels[level][:channels], downsamples[level], region, [WINDOW] * channels, colours
    )
    result = md.crop(
        request_url(channels, region, max_size), tmp_path / "out.png", image=pyramids[key]
    )
    assert result.level == level
    assert np.array_equal(np.asarray(Image.open(result.path)), expected)
