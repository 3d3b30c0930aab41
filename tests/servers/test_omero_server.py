"""The emulating OMERO server checked against api-contract.md, so that it can be trusted."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
import requests
from PIL import Image

from tests.servers.omero import Faults, OmeroServer, ServedImage, procedural_image

CIRCLES = "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif"


@pytest.fixture(scope="module")
def server(shared_data):
    images = {
        1: ServedImage.from_tiff(str(shared_data / CIRCLES)),
        2: procedural_image(40000, 30000),  # the contract's worked examples
        3: ServedImage.from_tiff(str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")),
        4: ServedImage.from_tiff(
            str(shared_data / "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff")
        ),
    }
    with OmeroServer(images, png=True, faults=Faults()) as srv:
        session = requests.Session()
        session.params = {"bsession": srv.login_key()}
        srv.http = session
        yield srv


def get(server, path, **params):
    return server.http.get(server.url + path, params=params, allow_redirects=False)


def pixels(response) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def q_linear(x, s, e):  # api-contract.md 1.4, the emulator-grade reference, literally
    v = np.floor(255.0 * (x - s) / (e - s) + 0.5)
    return np.where(x < s, 0, np.where(x >= e, 255, v)).astype(np.uint8)


def composite(qs, rgbs):
    out = np.zeros((*qs[0].shape, 3), np.int32)
    for q, rgb in zip(qs, rgbs, strict=True):
        for i, comp in enumerate(rgb):
            out[..., i] += (comp / 255.0 * q).astype(np.int32)
    return np.minimum(out, 255).astype(np.uint8)


def test_img_data_has_the_contract_keys(server) -> None:
    data = get(server, "/webgateway/imgData/2/").json()
    assert data["zoomLevelScaling"] == {"0": 1.0, "1": 0.5, "2": 0.25, "3": 0.125, "4": 0.0625}
    assert data["resolutions"]["4"] == {"sizeX": 2500, "sizeY": 1875}
    assert data["tiles"] is True
    assert data["tile_size"] == {"width": 256, "height": 256}
    assert data["size"] == {"width": 40000, "height": 30000, "z": 1, "t": 1, "c": 3}
    assert data["meta"]["pixelsType"] == "uint16"
    flat = get(server, "/webgateway/imgData/3/").json()
    assert flat["tiles"] is False
    assert not {"tile_size", "levels", "zoomLevelScaling", "resolutions"} & set(flat)
    assert get(server, "/webgateway/imgData/99/").status_code == 404


def test_edge_tiles_come_back_smaller(server) -> None:
    response = get(server, "/webgateway/render_image_region/2/0/0/", tile="4,9,7", c="1")
    assert Image.open(io.BytesIO(response.content)).size == (196, 83)  # the contract's example
    clamped = get(server, "/webgateway/render_image_region/2/0/0/", tile="0,0,0,1600,1200")
    assert Image.open(io.BytesIO(clamped.content)).size == (1024, 1024)
    outside = get(server, "/webgateway/render_image_region/2/0/0/", tile="4,10,0")
    assert outside.status_code == 404


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"tile": "a,b"}, "malformed tile argument, tile=a,b"),
        ({"tile": "-1,0,0"}, "Invalid resolution level -1 < 0"),
        ({"tile": "5,0,0"}, "Invalid resolution level, 5 > number of available levels 4"),
        ({"region": "0,0,1.5,2"}, "malformed region argument, region=0,0,1.5,2"),
        ({}, "tile or region argument required"),
    ],
)
def test_bad_requests_get_the_contract_400s(server, params, message) -> None:
    response = get(server, "/webgateway/render_image_region/2/0/0/", **params)
    assert (response.status_code, response.text) == (400, message)


def test_non_pyramid_levels_are_rejected(server) -> None:
    response = get(server, "/webgateway/render_image_region/3/0/0/", tile="1,0,0")
    assert (response.status_code, response.text) == (
        400,
        "Invalid resolution level 1, non pyramid file",
    )


def test_colour_composite_maths_equal_the_formulas(server, shared_data) -> None:
    import tifffile

    raw = tifffile.imread(shared_data / CIRCLES)[:, :512, 1024:1536]
    c = "1|1000:60000$FF0000,2|0:30000$00FF80,3|500:65535$3060C0"
    response = get(
        server,
        "/webgateway/render_image_region/1/0/0/",
        tile="0,2,0,512,512",
        c=c,
        m="c",
        format="png",
    )
    assert response.headers["Content-Type"] == "image/png"
    qs = [q_linear(raw[0], 1000, 60000), q_linear(raw[1], 0, 30000), q_linear(raw[2], 500, 65535)]
    expected = composite(qs, [(255, 0, 0), (0, 255, 128), (48, 96, 192)])
    np.testing.assert_array_equal(pixels(response), expected)


def test_greyscale_renders_only_the_first_active_channel(server, shared_data) -> None:
    import tifffile

    raw = tifffile.imread(shared_data / CIRCLES)[:, 1024:, 1024:]
    response = get(
        server,
        "/webgateway/render_image_region/1/0/0/",
        tile="0,1,1",
        c="-1,2|0:40000$00FF00,3|0:65535$FF0000",
        m="g",
        format="png",
    )
    grey = q_linear(raw[1], 0, 40000)  # channel 2 is the lowest active one
    np.testing.assert_array_equal(pixels(response), np.stack([grey] * 3, axis=-1))


def test_channel_string_quirks(server, shared_data) -> None:
    """Unsorted c pairs windows in ascending channel order; bad windows are ignored."""
    import tifffile

    raw = tifffile.imread(shared_data / CIRCLES)[:, :256, :256]
    base = "/webgateway/render_image_region/1/0/0/"
    unsorted = get(
        server, base, region="0,0,256,256", c="2|0:100$00FF00,1|0:65535$FF0000", m="c", format="png"
    )
    # channel 1 takes the first entry's window and colour, channel 2 the second's
    expected = composite(
        [q_linear(raw[0], 0, 100), q_linear(raw[1], 0, 65535)], [(0, 255, 0), (255, 0, 0)]
    )
    np.testing.assert_array_equal(pixels(unsorted), expected)
    ignored = get(
        server, base, region="0,0,256,256", c="1|12:1386r$FF0000,x,9", m="c", format="png"
    )
    np.testing.assert_array_equal(
        pixels(ignored), composite([q_linear(raw[0], 0, 65535)], [(255, 0, 0)])
    )


def test_jpeg_quality_default_and_q(server) -> None:
    base = "/webgateway/render_image_region/2/0/0/"
    default = get(server, base, tile="4,0,0", c="1|0:65535$FF0000", format="png-ignored")
    high = get(server, base, tile="4,0,0", c="1|0:65535$FF0000", q="1.0")
    assert default.headers["Content-Type"] == "image/jpeg"
    assert len(high.content) > len(default.content)


@pytest.mark.slow
def test_render_scaled_region_follows_the_figure_algorithm(server) -> None:
    response = get(
        server,
        "/figure/render_scaled_region/2/0/0/",
        c="1|0:65535$FF0000,3|0:65535$0000FF",
        region="-8160,-16416,48960,48960",
    )
    image = pixels(response)
    assert image.shape == (3060, 3060, 3)  # > max_size 2000: omero-figure#449

    # the level is 2500 x 1875, pasted at (510, 1026); JPEG blocks blur 16 px at the edges
    def grey(block: np.ndarray) -> bool:
        return bool((np.abs(block.astype(int) - 221) <= 3).all())

    assert grey(image[: 1026 - 16])
    assert grey(image[:, : 510 - 16])
    assert grey(image[1026 + 1875 + 16 :])
    assert grey(image[:, 510 + 2500 + 16 :])
    assert not grey(image[1026 + 16 : 1026 + 1875 - 16, 510 + 16 : 510 + 2500 - 16])


def test_anonymous_requests_are_redirected_or_forbidden(server) -> None:
    url = server.url + "/webgateway/imgData/1/"
    redirect = requests.get(url, allow_redirects=False)
    assert redirect.status_code == 302
    assert redirect.headers["Location"].startswith("/webclient/login/?url=")
    xhr = requests.get(url, headers={"X-Requested-With": "XMLHttpRequest"})
    assert xhr.status_code == 403


def test_json_login_flow(server) -> None:
    session = requests.Session()
    base = session.get(server.url + "/api/").json()["data"][0]["url:base"]
    urls = session.get(base).json()
    token = session.get(urls["url:token"]).json()["data"]
    assert session.get(urls["url:login"]).status_code == 405
    no_csrf = requests.post(urls["url:login"], data={"username": "alice", "password": "wonderland"})
    assert no_csrf.status_code == 403
    assert "CSRF" in no_csrf.json()["message"]
    headers = {"X-CSRFToken": token, "Referer": urls["url:login"]}
    wrong = session.post(
        urls["url:login"], data={"username": "alice", "password": "x", "server": 1}, headers=headers
    )
    assert wrong.status_code == 403
    ok = session.post(
        urls["url:login"],
        headers=headers,
        data={"username": "alice", "password": "wonderland", "server": 1},
    )
    assert ok.status_code == 200
    assert ok.json()["eventContext"]["userName"] == "alice"
    assert session.get(server.url + "/webgateway/imgData/1/").status_code == 200


def test_bsession_sets_a_session_cookie(server) -> None:
    session = requests.Session()
    first = session.get(
        server.url + "/webgateway/imgData/1/", params={"bsession": server.login_key()}
    )
    assert first.status_code == 200
    assert "sessionid" in session.cookies
    assert session.get(server.url + "/webgateway/imgData/1/").status_code == 200


def test_fault_switches_are_deterministic_and_capped(shared_data) -> None:
    faults = Faults(error_rate=0.5, max_consecutive=2)
    with OmeroServer({2: procedural_image(4000, 3000)}, public=True, faults=faults) as srv:
        url = srv.url + "/webgateway/render_image_region/2/0/0/"
        codes = [requests.get(url, params={"tile": "0,1,1"}).status_code for _ in range(9)]
        assert 500 in codes
        assert 200 in codes
        assert "500,500,500" not in ",".join(map(str, codes))  # never 3 in a row
        srv.faults.fail_tiles.add((0, 2, 2))
        assert {requests.get(url, params={"tile": "0,2,2"}).status_code for _ in range(4)} == {500}
        srv.faults.busy_imgdata = srv.state.counts["imgData"] + 1
        busy = requests.get(srv.url + "/webgateway/imgData/2/").json()
        assert busy == {"ConcurrencyException": {"backOff": 50}}
        assert "size" in requests.get(srv.url + "/webgateway/imgData/2/").json()
        assert json.loads(requests.get(srv.url + "/api/").text)["data"][0]["version"] == "0"
