"""``--auto-windows``: windows from percentiles of a coarse overview, for every source.

"Lit" here: an output pixel whose brightest component is at least half bright (>= 128).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask._info import whole_image_request
from minerva_dask.auto_contrast import parse_percentiles, with_auto_windows
from minerva_dask.cli import main
from minerva_dask.errors import RequestError
from tests.test_info import SAMPLES

DIM = ["other-tiff/small_vectra.qptiff", "ome-zarr/exemplar-001.crop.image.ome.zarr"]


def lit_fraction(rgb: np.ndarray) -> float:
    return float((rgb.max(axis=2) >= 128).mean())


@pytest.mark.slow
@pytest.mark.parametrize("name", DIM)
def test_auto_windows_light_a_dim_sample_and_the_printed_url_reproduces_it(
    capsys, shared_data, tmp_path, name
) -> None:
    image = str(shared_data / name)
    plain, auto, again = (tmp_path / f"{n}.png" for n in ("plain", "auto", "again"))
    assert main(["crop", "--image", image, "-o", str(plain), "-q"]) == 0
    capsys.readouterr()
    assert main(["crop", "--image", image, "--auto-windows", "-o", str(auto), "-q"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("?c=") and "\n" not in url
    rendered = np.asarray(Image.open(auto))
    assert 0.05 <= lit_fraction(rendered) <= 0.95, lit_fraction(rendered)
    assert lit_fraction(rendered) > lit_fraction(np.asarray(Image.open(plain)))
    assert main(["crop", url, "--image", image, "-o", str(again), "-q"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(again)), rendered)


def test_the_qptiff_renders_near_black_without_auto_windows(shared_data) -> None:
    source = md.open_image(shared_data / DIM[0])
    assert lit_fraction(md.render(source, whole_image_request(source)).compute()) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("name", [*SAMPLES, "demo"])
def test_every_sample_renders_with_visible_structure_under_auto_windows(
    shared_data, demo_path, name
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the edge cases' own warnings
        source = md.open_image(demo_path if name == "demo" else shared_data / name)
    request = with_auto_windows(source, whole_image_request(source))
    rgb = md.render(source, request).compute()
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) >= 2
    assert rgb.reshape(-1, 3).std(axis=0).max() > 10
    for channel in request.shown:
        low, high = channel.window
        assert low < high
        if source.info.dtype.kind in "ui":
            assert low.is_integer() and high.is_integer()


def test_windows_are_the_percentiles_of_the_projection_when_one_is_asked(shared_data) -> None:
    import tifffile

    path = shared_data / "ome-tiff/multi-channel-z-series.ome.tif"
    data = tifffile.imread(path)  # (c, z, y, x)
    request = md.parse_request("/0/0/0/?c=1,2&region=0,0,439,167&p=intmax|0:4")
    got = with_auto_windows(md.open_image(path), request, (1, 99))
    for channel in got.channels:
        low, high = np.percentile(data[channel.index].max(axis=0), (1, 99))
        assert channel.window == (np.floor(low), max(np.ceil(high), np.floor(low) + 1))


def test_auto_windows_change_only_shown_channels(demo_path) -> None:
    source = md.open_image(demo_path)
    request = md.parse_request("/0/0/0/?c=1|0:7$0000FF,-2|0:9$00FF00&region=0,0,4096,3072")
    got = with_auto_windows(source, request)
    assert got.channels[1].window == (0, 9)
    assert got.channels[0].window != (0, 7)


@pytest.mark.slow
def test_auto_windows_from_an_omero_server_match_the_files_windows(tiny_ome_tiff) -> None:
    from tests.servers.omero import OmeroServer, ServedImage

    images = {1: ServedImage.from_tiff(str(tiny_ome_tiff))}
    request = md.parse_request("/1/0/0/?c=1,2,3&region=0,0,1100,700")
    local = with_auto_windows(md.open_image(tiny_ome_tiff), request)
    with OmeroServer(images) as server:
        for mode in ("composite", "windowed"):
            source = md.open_omero(
                server.url, 1, mode=mode, username="alice", password="wonderland"
            )
            remote = with_auto_windows(source, request)
            for ours, theirs in zip(local.channels, remote.channels, strict=True):
                span = ours.window[1] - ours.window[0]
                assert abs(ours.window[0] - theirs.window[0]) <= 0.01 * span + 2, (ours, theirs)
                assert abs(ours.window[1] - theirs.window[1]) <= 0.01 * span + 2, (ours, theirs)


def test_auto_windows_reach_the_exports(capsys, demo_path, tmp_path) -> None:
    out = tmp_path / "auto.ome.zarr"
    argv = ["crop", "--image", str(demo_path), "--max-size", "256", "--auto-windows", "1,99"]
    assert main([*argv, "-o", str(out), "-q"]) == 0
    url = capsys.readouterr().out.strip()
    attrs = json.loads((out / "zarr.json").read_text())["attributes"]
    assert attrs["minerva-dask"]["request"] == url


@pytest.mark.parametrize("text", ["99,1", "a,b", "1", "-1,50", "1,101"])
def test_bad_percentiles_are_one_clear_error(capsys, demo_path, text) -> None:
    with pytest.raises(RequestError, match=r"percentiles|LOW < HIGH"):
        parse_percentiles(text)
    assert main(["crop", "--image", str(demo_path), f"--auto-windows={text}", "-q"]) == 2
    assert capsys.readouterr().err.startswith("minerva-dask: error: auto windows")


@pytest.mark.slow
def test_auto_windows_from_minervas_raw_tiles_match_the_files(minerva, tiny_ome_tiff) -> None:
    from tests.conftest import TINY

    request = md.parse_request("/0/0/0/?c=1,3&region=0,0,1100,700")
    source = md.open_minerva(TINY, **minerva.settings)
    local = with_auto_windows(md.open_image(tiny_ome_tiff), request)
    assert with_auto_windows(source, request) == local


def test_auto_windows_reach_every_channel_group(capsys, demo_path, tmp_path) -> None:
    out = tmp_path / "viewer"
    group = "/0/0/0/?c=1|0:65535$0000FF&region=0,0,4096,3072&max_size=256"
    argv = ["crop", "--image", str(demo_path), "--group", f"DNA={group}", "--auto-windows"]
    assert main([*argv, "-o", str(out), "-q"]) == 0
    url = capsys.readouterr().out.strip()
    assert url.startswith("/0/0/0/?c=1|") and "|0:65535$" not in url
    page = (out / "index.html").read_text()
    assert '"window": "0-65535"' not in page


def test_constant_and_non_finite_channels_get_windows_that_show_them(tmp_path, caplog) -> None:
    """A channel all at the dtype's top stays white (its window was top:top+1: black); one
    of NaN keeps its window with a warning (it was a 'window (nan, nan)' error), and NaN
    or inf among finite values do not spoil the percentiles."""
    import tifffile

    top = np.full((64, 64), 65535, np.uint16)
    tifffile.imwrite(tmp_path / "top.ome.tif", np.stack([top, top]), ome=True)
    source = md.open_image(tmp_path / "top.ome.tif")
    request = with_auto_windows(source, md.default_request(source.info))
    assert [c.window for c in request.channels] == [(65534.0, 65535.0)] * 2
    floats = np.full((2, 64, 64), np.nan, np.float32)
    floats[1, :32] = np.linspace(0, 1, 32 * 64).reshape(32, 64)
    floats[1, 40] = np.inf
    tifffile.imwrite(tmp_path / "nan.ome.tif", floats, ome=True)
    source = md.open_image(tmp_path / "nan.ome.tif")
    before = md.default_request(source.info)
    request = with_auto_windows(source, before)
    assert request.channels[0].window == before.channels[0].window
    assert "channel 1 holds no finite value" in caplog.text
    low, high = request.channels[1].window
    assert 0 <= low < 0.01 and 0.99 < high <= 1
