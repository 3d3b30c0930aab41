"""What the 2018 crop scripts did, typed as it was typed then, still works.

OMERO crop script: ``crop.py [-o OUTPUT_FOLDER] [URL]`` with ``OME_COOKIE`` and the default
URL below; Minerva crop script: the same shape with ``MINERVA_USERNAME``/``_PASSWORD``.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask._demo import synthetic_tissue
from minerva_dask.cli import main
from tests.conftest import TINY
from tests.reference import block_mean_level, crop_padded
from tests.servers.omero import OmeroServer, ServedImage
from tests.sparse import write_sparse_pyramid

pytestmark = pytest.mark.slow  # the 2018 scripts' calls against OMERO and Minerva

OMERO_DEFAULT = "/548111/0/0/?c=1|0:65535$FF0000,3|0:65535$0000FF&region=-8160,-16416,48960,48960"
MINERVA_DEFAULT = "/548111/0/0/?c=1|0:65535$FF0000&region=0,0,1024,1024"


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    """A 40000 x 30000, 3-channel, 5-level pyramid (real pixels at 1/16 scale only)."""
    path = tmp_path_factory.mktemp("slide") / "slide.ome.tif"
    write_sparse_pyramid(path, synthetic_tissue(2500, 1875, channels=3, seed=3), levels=5)
    return path


@pytest.fixture(scope="module")
def omero(slide):
    with OmeroServer({548111: ServedImage.from_tiff_lazily(str(slide))}, png=True) as server:
        yield server


def cookie_for(server) -> str:
    import requests

    response = requests.get(
        f"{server.url}/webgateway/imgData/548111/", params={"bsession": server.login_key()}
    )
    return f"sessionid={response.cookies['sessionid']}; csrftoken=abc123"


def test_the_omero_default_url_with_ome_cookie_writes_out_png_in_the_folder(
    omero, slide, tmp_path, monkeypatch, capsys
) -> None:
    for name in ("OMERO_USERNAME", "OMERO_PASSWORD", "OMERO_SESSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OME_COOKIE", cookie_for(omero))
    folder = tmp_path / "crops"
    folder.mkdir()
    assert main(["crop", OMERO_DEFAULT, "--omero", omero.url, "-o", str(folder)]) == 0
    err = capsys.readouterr().err
    # 48960 px at max_size 2000: the coarsest level (1/16) is 3060 px, which the 2018
    # script wrote as is; max_size is now kept: that level reduced 1/2 (issue 14)
    assert "Cropping 1/32 scale: level 4 reduced 1/2, output 1530 x 1530 px" in err
    assert "sessionid" not in err  # the cookie is never printed
    got = np.asarray(Image.open(folder / "out.png"))
    whole = OMERO_DEFAULT.split("&region=")[0] + "&region=0,0,40000,30000"
    level4 = md.render(
        md.open_image(slide), md.parse_request(whole), preset="omero", level=4
    ).compute()
    assert level4.shape == (1875, 2500, 3)
    # OMERO composites the tiles; the reduction averages the server's RGB, 2 x 2 blocks
    # of the level (edge blocks: what exists), placed at (-8160, -16416) / 32, black around
    means = block_mean_level(np.moveaxis(level4, -1, 0), 2)
    padded, _ = crop_padded(means, -255, -513, 1530, 1530)
    expected = np.moveaxis(padded, 0, -1)
    assert got.shape == (1530, 1530, 3)
    np.testing.assert_array_equal(got, expected)


def test_a_wrong_ome_cookie_is_an_authentication_error_not_a_black_image(
    omero, tmp_path, monkeypatch, capsys
) -> None:
    for name in ("OMERO_USERNAME", "OMERO_PASSWORD", "OMERO_SESSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OME_COOKIE", "sessionid=expired0000; csrftoken=abc")
    assert main(["crop", OMERO_DEFAULT, "--omero", omero.url, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "OME_COOKIE" in err and "expired0000" not in err
    assert not (tmp_path / "out.png").exists()


def test_the_minerva_default_url_writes_out_png_in_the_folder(
    minerva_environment, tiny_ome_tiff, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["crop", MINERVA_DEFAULT, "--minerva", TINY, "-q"]) == 0  # no -o: ./out.png
    expected = md.render(md.open_image(tiny_ome_tiff), md.parse_request(MINERVA_DEFAULT)).compute()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out.png")), expected)


def test_missing_minerva_credentials_name_the_variable(tmp_path, monkeypatch, capsys) -> None:
    for name in ("MINERVA_USERNAME", "MINERVA_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINERVA_DASK_CONFIG", str(tmp_path / "none.toml"))
    for key in ("MINERVA_API_URL", "MINERVA_USER_POOL_ID", "MINERVA_CLIENT_ID"):
        monkeypatch.setenv(key, "http://127.0.0.1:9" if key.endswith("URL") else "x")
    assert main(["crop", MINERVA_DEFAULT, "--minerva", TINY, "-o", str(tmp_path)]) == 2
    assert "must have MINERVA_USERNAME in environ" in capsys.readouterr().err


def test_missing_omero_credentials_name_the_variables(omero, tmp_path, monkeypatch, capsys):
    for name in ("OMERO_USERNAME", "OMERO_PASSWORD", "OMERO_SESSION", "OME_COOKIE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MINERVA_DASK_CONFIG", str(tmp_path / "none.toml"))
    assert main(["crop", OMERO_DEFAULT, "--omero", omero.url, "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "OMERO_USERNAME" in err and "OMERO_SESSION" in err and "OME_COOKIE" in err
