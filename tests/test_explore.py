"""Notebook conveniences: previews, HTML summaries, URL round trips, automatic windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minerva_dask as md
from minerva_dask.request import ChannelSetting, RenderRequest
from minerva_dask.sources.base import read_level


def test_preview_is_small_and_equals_a_small_render(demo_path) -> None:
    source = md.open_image(demo_path)
    request = md.parse_request(
        "/0/0/0/?c=1|600:24000$0000FF,3|700:15000$FF0000&region=-1000,0,6000,3072"
    )
    full = md.render(source, request)
    small = full.preview(300)
    assert max(small.shape[:2]) <= 300
    reduced = md.render(source, md.parse_request(request.to_url() + "&max_size=300"))
    assert reduced.reduction == 3  # even the coarsest level is 750 wide: reduced 1/3
    np.testing.assert_array_equal(small, reduced.compute())
    assert small.shape == (128, 250, 3)
    assert full.preview(1000).shape == (384, 750, 3)


def test_html_summaries_name_the_image_level_and_channels(demo_path) -> None:
    source = md.open_image(demo_path)
    html = md.render(
        source, md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,4096,3072")
    )._repr_html_()
    assert "demo-tissue-v1" in html and "level 2" in html and "DNA" in html
    assert "data:image/png;base64," in html
    table = source.info._repr_html_()
    assert table.count("<tr>") == 1 + 4 and "Membrane" in table


colours = st.tuples(*[st.integers(0, 255)] * 3).map(lambda c: tuple(v / 255 for v in c))
windows = st.tuples(st.floats(-1e5, 1e5, allow_nan=False), st.floats(0, 1e5)).map(
    lambda w: (w[0], w[0] + w[1])
)


@st.composite
def channel(draw):
    colour = draw(st.none() | colours)
    alpha = 1.0 if colour is None else draw(st.sampled_from([1.0, 128 / 255]))
    return ChannelSetting(
        index=draw(st.integers(0, 60)),
        window=draw(st.none() | windows),
        color=colour,
        alpha=alpha,
        active=draw(st.booleans()),
        inverted=draw(st.booleans()),
        family=draw(st.sampled_from(["linear", "polynomial"])),
        coefficient=draw(st.sampled_from([1.0, 0.5, 2.0])),
    )


requests = st.builds(
    RenderRequest,
    channels=st.lists(channel(), min_size=1, max_size=6, unique_by=lambda c: c.index),
    region=st.tuples(
        st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(0.5, 1e6), st.floats(0.5, 1e6)
    ),
    max_size=st.integers(1, 100_000),
    z=st.integers(0, 9),
    t=st.integers(0, 9),
    image_id=st.sampled_from(["0", "548111"]),
    model=st.sampled_from(["color", "greyscale"]),
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(requests)
def test_a_request_turned_into_a_url_parses_back_to_the_same_request(request) -> None:
    assert md.parse_request(request.to_url()) == request


def test_a_request_without_an_image_id_round_trips() -> None:
    request = md.default_request(md.open_image(md.demo_image_path()).info)
    assert request.to_url().startswith("?c=")
    assert md.parse_request(request.to_url()) == request


def test_with_channel_changes_one_channel_only() -> None:
    request = md.parse_request("/1/0/0/?c=1|0:100$FF0000,2|0:50$00FF00&region=0,0,10,10")
    changed = request.with_channel(1, color="0000FF")
    assert changed.channels[0] == request.channels[0]
    assert changed.channels[1].color == (0.0, 0.0, 1.0)
    assert "2|0:50$0000FF" in changed.to_url()


AUTO_SAMPLES = [
    "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",
    "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff",
    "ome-zarr/exemplar-001.crop.image.ome.zarr",
    "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif",
]


@pytest.mark.parametrize("name", AUTO_SAMPLES)
def test_auto_windows_from_a_low_level_are_close_to_the_full_levels(shared_data, name) -> None:
    """Tolerance: each bound within 5% of the channel's full-level data range (the 0.1 and
    99.9 percentiles of a 2x-16x smaller level move by less on these images)."""
    source = md.open_image(shared_data / name)
    channels = list(range(min(source.info.size_c, 4)))
    auto = md.auto_windows(source, channels)
    full = read_level(source, 0, channels)
    for channel, plane in zip(channels, full, strict=True):
        low, high = np.percentile(plane, (0.1, 99.9))
        span = float(plane.max()) - float(plane.min()) or 1.0
        assert abs(auto[channel][0] - low) <= 0.05 * span, (channel, auto[channel], low)
        assert abs(auto[channel][1] - high) <= 0.05 * span, (channel, auto[channel], high)


def test_auto_windows_read_a_low_level_not_level_zero(demo_path, monkeypatch) -> None:
    source = md.open_image(demo_path)
    levels_read = []
    original = source.read_region

    def spy(level, *args, **kwargs):
        levels_read.append(level)
        return original(level, *args, **kwargs)

    monkeypatch.setattr(source, "read_region", spy)
    windows = md.auto_windows(source)
    assert set(levels_read) == {1}  # 2048 x 1536 is the finest level with <= 4 Mpx
    request = md.request_with_auto_windows(source, md.default_request(source.info))
    assert request.channels[0].window == windows[0]
