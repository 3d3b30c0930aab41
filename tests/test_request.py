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


# ------------------------------------------------- every URL form OMERO.figure and OMERO.web emit


def _figure_img_src(base: str, channels: list[dict], viewport: tuple, *, newer: bool) -> str:
    """The URL of OMERO.figure's ``get_img_src`` for a big image (panel_model.js): every
    channel listed, float windows, ``maps`` without spaces, the viewport padded to a square
    1.5 x its longest side and truncated like ``parseInt``, ``p`` for a Z projection."""
    entries = [
        f"{'' if c['active'] else '-'}{i + 1}|{c['start']}:{c['end']}${c['color']}"
        for i, c in enumerate(channels)
    ]
    if newer:
        maps = [
            {
                "inverted": {"enabled": c["inverted"]},
                "quantization": {"family": c["family"], "coefficient": c["coefficient"]},
            }
            for c in channels
        ]
    else:
        maps = [{"reverse": {"enabled": c["inverted"]}} for c in channels]
    x, y, w, h = viewport
    length = max(w, h) * 1.5
    coords = [int(v) for v in (x - (length - w) / 2, y - (length - h) / 2, length, length)]
    maps_text = __import__("json").dumps(maps).replace(" ", "")
    return (
        f"{base}figure/render_scaled_region/548111/3/1/?c={','.join(entries)}"
        f"&p=intmax|0:9&maps={maps_text}&region={','.join(map(str, coords))}&m=c"
    )


FIGURE_CHANNELS = [
    dict(active=True, start=120.5, end=4000.25, color="FF0000", inverted=False,
         family="linear", coefficient=1),
    dict(active=False, start=0, end=65535, color="00FF00", inverted=True,
         family="logarithmic", coefficient=1.8),
    dict(active=True, start=-50, end=900.75, color="cool.lut", inverted=True,
         family="polynomial", coefficient=0.5),
]  # fmt: skip


@pytest.mark.parametrize("newer", [False, True], ids=["reverse-maps", "inverted-quantization"])
@pytest.mark.parametrize("base", ["https://omero.example.org/", "https://example.org/omero/", "/"])
def test_urls_built_like_omero_figure_parse_with_every_setting(base: str, newer: bool) -> None:
    url = _figure_img_src(base, FIGURE_CHANNELS, (10.5, 20.2, 300.5, 200), newer=newer)
    req = md.parse_request(url)
    assert (req.image_id, req.z, req.t, req.model) == ("548111", 3, 1, "color")
    assert req.region == Rect(-64, -105, 450, 450)  # padded square, negative origin
    assert req.max_size == 2000
    assert req.server == (base.rstrip("/") or None)
    assert [(c.window, c.active, c.inverted) for c in req.channels] == [
        ((120.5, 4000.25), True, False),
        ((0.0, 65535.0), False, True),
        ((-50.0, 900.75), True, True),
    ]
    assert req.channels[2].lut == "cool.lut"
    if newer:
        assert [(c.family, c.coefficient) for c in req.channels] == [
            ("linear", 1.0), ("logarithmic", 1.8), ("polynomial", 0.5)
        ]  # fmt: skip


C_MAPS = 'c=1|0:600.5$FF0000,-2|10:20$00FF00&maps=[{"inverted":{"enabled":true}},{}]&m=c'


@pytest.mark.parametrize(
    "url",
    [
        f"https://omero.example.org/omero/webgateway/render_image/548111/2/1/?{C_MAPS}",
        f"https://omero.example.org/omero/webclient/render_image/548111/2/1/?{C_MAPS}&p=normal",
        f"/omero/webgateway/render_image/548111/2/1/?{C_MAPS}&ia=0",
        f"webclient/render_image/548111/2/1?{C_MAPS}&q=0.9",
    ],
)
def test_render_image_urls_ask_for_the_whole_plane(url: str) -> None:
    req = md.parse_request(url)
    assert (req.image_id, req.z, req.t, req.region, req.tile) == ("548111", 2, 1, None, None)
    assert req.channels[0].inverted and req.channels[0].window == (0.0, 600.5)
    assert req.server == ("https://omero.example.org/omero" if "://" in url else None)


@pytest.mark.parametrize("app", ["webgateway", "webclient"])
def test_render_image_region_renders_its_region_at_full_resolution(app: str) -> None:
    req = md.parse_request(
        f"https://h/omero/{app}/render_image_region/548111/0/0/?region=1024,-20,512,300"
        "&c=1|0:65535$FF0000&m=c&q=0.9"
    )
    assert req.region == Rect(1024, -20, 512, 300)
    assert req.max_size == 512  # OMERO.web sends region pixels unscaled
    assert (req.server, req.quality) == ("https://h/omero", 0.9)
    given = md.parse_request(
        f"/{app}/render_image_region/1/0/0/?region=0,0,4000,300&c=1&max_size=100"
    )
    assert given.max_size == 100


def _pyramid_info() -> ImageInfo:
    return ImageInfo(
        name="p",
        dtype=__import__("numpy").dtype("uint16"),
        size_c=1,
        size_z=1,
        size_t=1,
        levels=(
            LevelInfo(40000, 30000, 256, 256),
            LevelInfo(20000, 15000, 256, 256, (2.0, 2.0)),
            LevelInfo(10000, 7500, 256, 256, (4.0, 4.0)),
            LevelInfo(5000, 3750, 256, 256, (8.0, 8.0)),
            LevelInfo(2500, 1875, 256, 256, (16.0, 16.0)),
        ),
        channels=(ChannelInfo(0, "c", (1.0, 1.0, 1.0), (0.0, 65535.0)),),
    )


@pytest.mark.parametrize(
    ("tile", "region", "side"),
    [
        ("2,3,1", Rect(3072, 1024, 1024, 1024), 256),  # level 2, tiles of 256: x=768, y=256
        ("4,9,7", Rect(36864, 28672, 196 * 16, 83 * 16), 196),  # the edge tile: 196 x 83
        ("0,12,7,1024,1024", Rect(12288, 7168, 1024, 1024), 1024),
        ("0,1,1,1600,1200", Rect(1024, 1024, 1024, 1024), 1024),  # clamped to 1024 as OMERO
        ("1,0,0,0,-1", Rect(0, 0, 512, 512), 256),  # <= 0: the level's tile size
    ],
)
def test_tile_becomes_the_full_resolution_region_it_covers(tile, region, side) -> None:
    req = md.parse_request(f"/webgateway/render_image_region/548111/0/0/?tile={tile}&c=1&m=c")
    assert req.region is None and req.tile is not None
    placed = req.for_image(_pyramid_info())
    assert (placed.region, placed.max_size, placed.tile) == (region, side, None)
    assert md.parse_request(req.to_url()) == req  # round trip keeps the tile


def test_a_tile_renders_at_its_level_and_matches_the_region_it_covers(demo_path) -> None:
    source = md.open_image(demo_path)
    by_tile = md.render(
        source, md.parse_request("/webgateway/render_image_region/0/0/0/?c=1&tile=1,3,2")
    )
    by_region = md.render(
        source, md.parse_request("/0/0/0/?c=1&region=3072,2048,1024,1024&max_size=512")
    )
    assert by_tile.level == 1 and by_tile.shape == (512, 512, 3)
    assert (by_tile.data.compute() == by_region.data.compute()).all()


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("/webgateway/render_image/1/?c=1", "has no z and t"),
        ("/webgateway/render_image/1/0/0/?c=1&region=0,0,5,5", "takes no region"),
        ("/webgateway/render_image/1/0/0/?c=1&p=intfoo|0:4", "not one of normal, intmax"),
        ("/1/0/0/?c=1&region=0,0,1,1&p=intmax|4:2", "END must be >= START"),
        ("/1/0/0/?c=1&region=0,0,1,1&p=intmax|a:2", "START:END"),
        ("/webgateway/render_image_region/1/0/0/?c=1", "missing region=x,y,width,height (full"),
        ("/webgateway/render_image_region/1/0/0/?c=1&tile=0,0,0&region=0,0,1,1", "not both"),
        ("/webgateway/render_image_region/1/0/0/?c=1&tile=0,0", "level,tx,ty"),
        ("/webgateway/render_image_region/1/0/0/?c=1&tile=0,-1,0", "tx -1 is negative"),
        ("/figure/render_scaled_region/1/0/0/?c=1&tile=0,0,0", "not tile"),
        ("https://h/webgateway/render_image_region/1/0/0/a/?c=1&region=0,0,1,1", "three parts"),
        ("/1/0/0/?c=1&region=0,0,1,1&q=0", "within (0, 1]"),
    ],
)
def test_malformed_omero_web_urls_are_rejected_naming_the_part(url: str, message: str) -> None:
    with pytest.raises(md.RequestError) as info:
        md.parse_request(url)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("tile", "message"),
    [
        ("5,0,0", "tile level 5 does not exist: the image has 5 levels"),
        ("4,10,0", "outside level 4"),
    ],
)
def test_tiles_that_do_not_fit_the_image_are_rejected(tile: str, message: str) -> None:
    req = md.parse_request(f"/webgateway/render_image_region/1/0/0/?c=1&tile={tile}")
    with pytest.raises(md.RequestError, match=message):
        req.for_image(_pyramid_info())


@pytest.mark.parametrize(
    "url",
    [
        "https://h/omero/webgateway/render_image/5/1/2/?c=1|0:9$FF0000&max_size=300",
        "/webgateway/render_image/5/0/0/?c=-1,2&m=g",
    ],
)
def test_whole_image_requests_round_trip_as_render_image_urls(url: str) -> None:
    req = md.parse_request(url)
    assert "/webgateway/render_image/5/" in req.to_url()
    assert md.parse_request(req.to_url()) == req


def test_a_request_that_is_neither_a_url_nor_a_render_request_is_one_error(tmp_path) -> None:
    # md.crop(5, ...) was an AttributeError ('int' object has no attribute 'server')
    with pytest.raises(md.RequestError, match="not a int"):
        md.crop(5, tmp_path / "x.png", image="slide.ome.tif")
    assert list(tmp_path.iterdir()) == []


def test_storage_options_that_are_not_a_dict_are_one_error(tmp_path) -> None:
    # storage_options="anon" was a ValueError (dictionary update sequence element #0...)
    with pytest.raises(md.RequestError, match="storage_options is a dict"):
        md.open_source("s3://lab/slide.ome.tif", storage_options="anon")
