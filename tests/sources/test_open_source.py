"""``open_source``: one function opens a file, a URL, an OMERO or a Minerva image, and
``crop`` and the CLI open every image through it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask.cli import main
from tests.servers.omero import OmeroServer, ServedImage

REQUEST = "/1/0/0/?c=1|500:20000$0000FF,3|300:9000$FF8000&region=-150,-80,1400,900&max_size=600"


@pytest.fixture(scope="module")
def omero(tiny_ome_tiff):
    images = {1: ServedImage.from_tiff(str(tiny_ome_tiff))}
    with OmeroServer(images, png=True, public=True) as server:
        yield server


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "no image given"),
        ({"image": "x.ome.tif", "omero": "https://o.example"}, "not both image= and omero="),
        ({"omero": "https://o.example", "minerva": "u"}, "not both omero= and minerva="),
        ({"omero": "https://o.example"}, "needs its numeric id"),
        ({"omero": "https://o.example", "image_id": "abc"}, "needs its numeric id"),
        ({"image_id": 1}, "give omero=SERVER with it"),
        (
            {"omero": "https://o.example", "image_id": 1, "storage_options": {"anon": True}},
            "fsspec",
        ),
        ({"omero": "https://o.example", "image_id": 1, "series": 2}, "takes no option series"),
    ],
)
def test_missing_conflicting_or_misapplied_arguments_are_refused_before_opening(
    arguments, message
) -> None:
    # o.example is never contacted: every one of these is refused before any request
    with pytest.raises(md.RequestError, match=message):
        md.open_source(**arguments)


def test_files_and_open_sources_open_as_open_image_does(tiny_ome_tiff) -> None:
    source = md.open_source(tiny_ome_tiff)
    assert source.info == md.open_image(tiny_ome_tiff).info
    assert md.open_source(source) is source
    with pytest.raises(md.RequestError, match="takes no options"):
        md.open_source(source, series=1)
    with pytest.raises(md.RequestError, match="an ome-tiff image takes no option mode"):
        md.open_source(tiny_ome_tiff, mode="windowed")
    with pytest.raises(md.RequestError, match="not a dict"):
        md.open_source({"path": str(tiny_ome_tiff)})


def test_omero_opens_by_server_and_image_id(omero, tiny_ome_tiff) -> None:
    source = md.open_source(omero=omero.url, image_id=1, mode="windowed")
    local = md.open_image(tiny_ome_tiff).info
    assert [(v.width, v.height) for v in source.info.levels] == [
        (v.width, v.height) for v in local.levels
    ]
    assert source.tile_mode == "windowed"
    assert md.open_source(omero=omero.url, image_id="1").tile_mode == "composite"


def test_crop_reads_omero_named_by_argument_or_by_a_full_url(omero, tiny_ome_tiff, tmp_path):
    expected = md.render(
        md.open_image(tiny_ome_tiff), md.parse_request(REQUEST), preset="omero"
    ).compute()
    md.crop(REQUEST, tmp_path / "a.png", omero=omero.url)
    full = f"{omero.url}/figure/render_scaled_region{REQUEST}"
    md.crop(full, tmp_path / "b.png", source_options={"mode": "windowed"}, preset="omero")
    for name in ("a.png", "b.png"):
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / name)), expected)


def test_crop_without_an_omero_image_id_says_so(omero, tmp_path) -> None:
    with pytest.raises(md.RequestError, match="needs the image id"):
        md.crop(None, tmp_path / "a.png", omero=omero.url)
    assert not (tmp_path / "a.png").exists()


def test_cli_refuses_two_images_in_one_line(omero, tiny_ome_tiff, tmp_path, capsys) -> None:
    out, asked = tmp_path / "a.png", omero.state.counts["requests"]
    args = ["crop", REQUEST, "--image", str(tiny_ome_tiff), "--omero", omero.url, "-o", str(out)]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        "minerva-dask: error: give one image, not both --image and --omero\n"
    )
    assert not out.exists()
    assert omero.state.counts["requests"] == asked  # refused before asking the server
