"""The OMERO.figure URL parser and the request model."""

from __future__ import annotations

import pytest

import minerva_dask as md
from minerva_dask.geometry import Rect
from minerva_dask.request import ChannelSetting, RenderRequest, parse_color
from minerva_dask.sources.base import ChannelInfo, ImageInfo, LevelInfo

C = "c=1|300:12000$0000FF,-2|0:65535$00FF00,3|500:9000$FF0000"


@pytest.mark.parametrize(
    "url",
    [
        f"https://omero.example.org/figure/render_scaled_region/548111/0/0/?{C}&region=0,0,10,10",
        f"https://omero.example.org/omero/figure/render_scaled_region/548111/0/0/?{C}&region=0,0,10,10",
        f"/figure/render_scaled_region/548111/0/0/?{C}&region=0,0,10,10",
        f"figure/render_scaled_region/548111/0/0/?{C}&region=0,0,10,10",
        f"/548111/0/0/?{C}&region=0,0,10,10",
        f"/548111/0/0?{C}&region=0,0,10,10",
        f"548111/0/0/?{C}&region=0,0,10,10",
    ],
)
def test_every_url_form_gives_the_same_request(url: str) -> None:
    req = md.parse_request(url)
    assert req.image_id == "548111"
    assert [(c.index, c.window, c.color, c.active) for c in req.channels] == [
        (0, (300.0, 12000.0), (0.0, 0.0, 1.0), True),
        (1, (0.0, 65535.0), (0.0, 1.0, 0.0), False),
        (2, (500.0, 9000.0), (1.0, 0.0, 0.0), True),
    ]
    assert req.region == Rect(0, 0, 10, 10)
    assert req.max_size == 2000


def test_full_url_keeps_the_server_with_its_prefix() -> None:
    req = md.parse_request(
        f"https://omero.example.org/omero/figure/render_scaled_region/5/0/0/?{C}&region=0,0,1,1"
    )
    assert req.server == "https://omero.example.org/omero"


def test_query_only_request_has_no_image_id() -> None:
    req = md.parse_request("?c=1&region=0,0,5,5")
    assert (req.image_id, req.z, req.t) == (None, 0, 0)
    assert req.channels[0].window is None
    assert req.channels[0].color is None


def test_z_t_max_size_float_region_and_float_windows() -> None:
    req = md.parse_request(
        "/7/3/2/?c=2|-500.5:1542.25$F00&region=-2000.5,-1000,40000.25,40000&max_size=2048"
    )
    assert (req.z, req.t, req.max_size) == (3, 2, 2048)
    assert req.region == Rect(-2000.5, -1000.0, 40000.25, 40000.0)
    assert req.channels[0].window == (-500.5, 1542.25)


@pytest.mark.parametrize(
    ("colour", "rgb", "alpha"),
    [
        ("F00", (1, 0, 0), 1.0),
        ("0F08", (0, 1, 0), 136 / 255),
        ("00FF00", (0, 1, 0), 1.0),
        ("0000FF80", (0, 0, 1), 128 / 255),
        ("#ffffff", (1, 1, 1), 1.0),
    ],
)
def test_colours_of_3_4_6_8_hex_digits(colour: str, rgb: tuple, alpha: float) -> None:
    assert parse_color(colour) == (tuple(float(v) for v in rgb), alpha)


def test_index_dollar_colour_without_window_and_lut_names() -> None:
    req = md.parse_request("/1/0/0/?c=1$FF0000,2|0:10$cool.lut&region=0,0,1,1")
    assert req.channels[0].color == (1.0, 0.0, 0.0)
    assert req.channels[0].window is None
    assert req.channels[1].lut == "cool.lut"
    assert req.channels[1].color is None


def test_maps_inverted_reverse_and_quantization() -> None:
    maps = (
        '[{"inverted":{"enabled":true}},{"reverse":{"enabled":true}},'
        '{"quantization":{"family":"polynomial","coefficient":2}}]'
    )
    req = md.parse_request(f"/1/0/0/?c=1,2,3&maps={maps}&region=0,0,1,1")
    assert [c.inverted for c in req.channels] == [True, True, False]
    assert (req.channels[2].family, req.channels[2].coefficient) == ("polynomial", 2.0)


def test_greyscale_model_shows_only_the_first_active_channel() -> None:
    req = md.parse_request("/1/0/0/?c=-1,3,2&m=g&region=0,0,1,1")
    assert [c.index for c in req.shown] == [1]


def test_url_encoded_request_parses() -> None:
    req = md.parse_request("/1/0/0/?c=1%7C0%3A100%24FF0000&region=0%2C0%2C5%2C5")
    assert req.channels[0].window == (0.0, 100.0)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("/1/0/0/", "no query"),
        ("/1/0/0/?region=0,0,1,1", "missing c"),
        ("/1/0/0/?c=1", "missing region"),
        ("/1/0/0/?c=&region=0,0,1,1", "missing c"),
        ("/1/0/0/?c=x|0:1&region=0,0,1,1", "channel index 'x'"),
        ("/1/0/0/?c=0&region=0,0,1,1", "must be >= 1"),
        ("/1/0/0/?c=1,,2&region=0,0,1,1", "empty entry"),
        ("/1/0/0/?c=1|0-100&region=0,0,1,1", "is not start:end"),
        ("/1/0/0/?c=1|a:100&region=0,0,1,1", "window start: 'a'"),
        ("/1/0/0/?c=1|0:nan&region=0,0,1,1", "not a finite"),
        ("/1/0/0/?c=1|500:100&region=0,0,1,1", "start 500 is greater than end 100"),
        ("/1/0/0/?c=1$GG0000&region=0,0,1,1", "hexadecimal"),
        ("/1/0/0/?c=1$FF00F&region=0,0,1,1", "hexadecimal"),
        ("/1/0/0/?c=1,1&region=0,0,1,1", "listed twice"),
        ("/1/0/0/?c=1&region=0,0,1", "four numbers"),
        ("/1/0/0/?c=1&region=0,0,a,1", "'a' is not a number"),
        ("/1/0/0/?c=1&region=0,0,0,10", "must be > 0"),
        ("/1/0/0/?c=1&region=0,0,1,1&max_size=0", "max_size '0'"),
        ("/1/0/0/?c=1&region=0,0,1,1&max_size=1.5", "max_size '1.5'"),
        ("/1/0/0/?c=1&region=0,0,1,1&m=x", "m 'x'"),
        ("/1/0/0/?c=1&region=0,0,1,1&maps=[{", "maps is not valid JSON"),
        ("/1/0/0/?c=1,2&region=0,0,1,1&maps=[{}]", "maps has 1 entries but c has 2"),
        ('/1/0/0/?c=1&region=0,0,1,1&maps=[{"inverted":true}]', "maps[0].inverted"),
        ('/1/0/0/?c=1&region=0,0,1,1&maps=[{"quantization":{"family":"cubic"}}]', "cubic"),
        ("/1/0/0/?c=1&region=0,0,1,1&max-size=10", "unknown query parameter 'max-size'"),
        ("/1/0/0/?c=1&c=2&region=0,0,1,1", "given twice"),
        ("/1/a/0/?c=1&region=0,0,1,1", "z 'a'"),
        ("/1/0/-1/?c=1&region=0,0,1,1", "t '-1'"),
        ("/1/0/?c=1&region=0,0,1,1", "three parts"),
        ("ftp://host/figure/render_scaled_region/1/0/0/?c=1&region=0,0,1,1", "scheme 'ftp'"),
        ("https://host/webclient/1/0/0/?c=1&region=0,0,1,1", "does not contain"),
        ("/1/0/0/?c=1&region=0,0,1,1&q=2", "q (JPEG quality)"),
    ],
)
def test_malformed_requests_are_rejected_naming_the_part(url: str, message: str) -> None:
    with pytest.raises(md.RequestError) as info:
        md.parse_request(url)
    assert message in str(info.value)


def _info(size_c: int = 3, size_z: int = 1, size_t: int = 1) -> ImageInfo:
    return ImageInfo(
        name="x",
        dtype=__import__("numpy").dtype("uint16"),
        size_c=size_c,
        size_z=size_z,
        size_t=size_t,
        levels=(LevelInfo(10, 10, 10, 10),),
        channels=tuple(
            ChannelInfo(i, f"c{i}", (1.0, 1.0, 1.0), (0.0, 65535.0)) for i in range(size_c)
        ),
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/1/0/0/?c=4&region=0,0,1,1", "channel 4 in c is beyond the image's 3 channels"),
        ("/1/0/0/?c=1,-5&region=0,0,1,1", "channel 5 in c is beyond"),
        ("/1/2/0/?c=1&region=0,0,1,1", "z=2 is out of range"),
        ("/1/0/1/?c=1&region=0,0,1,1", "t=1 is out of range"),
        ("/1/0/0/?c=-1,-2&region=0,0,1,1", "no channel is shown"),
    ],
)
def test_requests_that_do_not_fit_the_image_are_rejected(url: str, message: str) -> None:
    with pytest.raises(md.RequestError, match=message.replace("(", r"\(")):
        md.parse_request(url).resolve(_info())


def test_resolve_fills_defaults_from_the_image() -> None:
    (resolved,) = md.parse_request("/1/0/0/?c=2&region=0,0,1,1").resolve(_info())
    assert (resolved.index, resolved.start, resolved.end, resolved.color) == (
        1,
        0.0,
        65535.0,
        (1.0, 1.0, 1.0),
    )


def test_request_from_python_objects_equals_the_parsed_url() -> None:
    built = RenderRequest(
        channels=(
            ChannelSetting(index=0, window=(300, 12000), color="0000FF"),
            ChannelSetting(index=1, window=(0, 65535), color=(0, 1, 0), active=False),
        ),
        region=(0, 0, 8192, 8192),
        max_size=1024,
        image_id="0",
    )
    parsed = md.parse_request(
        "/0/0/0/?c=1|300:12000$0000FF,-2|0:65535$00FF00&region=0,0,8192,8192&max_size=1024"
    )
    assert built == parsed


def test_python_objects_are_validated_too() -> None:
    with pytest.raises(md.RequestError, match="greater than end"):
        ChannelSetting(index=0, window=(10, 1))
    with pytest.raises(md.RequestError, match="index must be an integer"):
        ChannelSetting(index=-1)
    with pytest.raises(md.RequestError, match="max_size"):
        RenderRequest(channels=(ChannelSetting(index=0),), max_size=0)


def test_to_url_round_trips_and_sorts_channels() -> None:
    url = (
        "/9/1/0/?c=3|0.5:9.25$FF000080,-1|0:10$cool.lut,2$00FF00&region=-1.5,2,30,40"
        '&max_size=77&m=g&maps=[{},{"inverted":{"enabled":true}},{}]&q=0.9'
    )
    req = md.parse_request(url)
    text = req.to_url()
    assert text.index("c=-1") < text.index(",2") < text.index(",3")
    assert md.parse_request(text) == req
