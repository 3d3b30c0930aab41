"""``minerva-dask info``: what an image holds, from metadata only, for every source."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import minerva_dask as md
from minerva_dask._info import image_summary, whole_image_request
from minerva_dask.cli import main
from tests.conftest import SHARED_DATA, TINY
from tests.servers.omero import OmeroServer, ServedImage
from tests.servers.static import StaticServer

SAMPLES = [
    "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff",
    "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",
    "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif",
    "ome-tiff/interleaved-4sample-subifd.ome.tiff",
    "ome-tiff/4ch-uint16-64x64.ome.tif",
    "ome-tiff/multi-channel-z-series.ome.tif",
    "ome-tiff/multi-channel-deflate.ome.tif",
    "ome-zarr/exemplar-001.crop.image.ome.zarr",
    "ome-zarr/exemplar-001.crop.segmentations.ome.zarr",
    "ome-zarr/arange-v0.4.zarr",
    "ome-zarr/arange-v0.5.zarr",
    "ome-zarr/binary-2ch-v0.5.zarr",
    "ome-zarr/blobs_image_v04.ome.zarr",
    "ome-zarr/blobs_image_v05.ome.zarr",
    "ome-zarr/bioformats2raw-layout/data.zarr",
    "other-tiff/CMU-1-Small-Region.svs",
    "other-tiff/small_vectra.qptiff",
    "other-tiff/boxes-page-pyramid.tiff",
]


def info_json(capsys, argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(["info", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def check_round_trip(summary: dict, source) -> None:
    """The summary agrees with the source, and its URL parses back into the request."""
    info = source.info
    assert summary["size"] == {
        "x": info.width,
        "y": info.height,
        "z": info.size_z,
        "t": info.size_t,
        "c": info.size_c,
    }
    assert summary["dtype"] == str(info.dtype)
    assert [(lv["width"], lv["height"]) for lv in summary["levels"]] == [
        (lv.width, lv.height) for lv in info.levels
    ]
    assert [c["name"] for c in summary["channels"]] == [c.name for c in info.channels]
    request = md.parse_request(summary["request"])
    assert request == whole_image_request(source)
    assert request.to_url() == summary["request"]
    md.render(source, md.parse_request(summary["request"]))  # it resolves against the image


@pytest.mark.parametrize("name", SAMPLES)
def test_info_of_every_local_sample_round_trips_into_a_request(capsys, shared_data, name) -> None:
    path = shared_data / name
    with pytest.warns() if "edge" in name else _nothing():
        summary = info_json(capsys, [str(path)])
    check_round_trip(summary, md.open_image(path))


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_info_text_names_levels_channels_and_the_request(capsys, shared_data) -> None:
    path = shared_data / "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff"
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "OME-TIFF" in out and "uint16" in out and "c=48" in out
    assert "100 x 100" in out and "12 x 12" in out and "10000 x 10000 µm" in out
    assert "Channel 47" in out
    assert out.strip().splitlines()[-1].startswith("Request:     /0/0/0/?c=1|0:65535$0000FF")


@pytest.mark.slow
def test_info_of_every_sample_over_http(capsys, shared_data) -> None:
    with StaticServer(str(shared_data)) as url:
        for name in SAMPLES:
            summary = info_json(capsys, [f"{url}/{name}"])
            local = image_summary(md.open_image(shared_data / name))
            assert {**summary, "name": None} == {**local, "name": None}, name


@pytest.mark.slow
def test_info_reads_metadata_only(shared_data) -> None:
    path = SHARED_DATA / "ome-zarr/exemplar-001.crop.image.ome.zarr"
    server = StaticServer(str(path.parent))
    with server as url:
        image_summary(md.open_image(f"{url}/{path.name}"))
    paths = [p for p, _ in server.httpd.requests_seen]  # type: ignore[attr-defined]
    metadata = ("zarr.json", ".zattrs", ".zgroup", ".zarray", ".zmetadata")
    assert paths and all(Path(p).name in metadata for p in paths), paths


@pytest.mark.slow
def test_info_on_the_emulating_omero_server(capsys, tiny_ome_tiff, monkeypatch) -> None:
    monkeypatch.setenv("OMERO_USERNAME", "alice")
    monkeypatch.setenv("OMERO_PASSWORD", "wonderland")
    images = {
        7: ServedImage.from_tiff(
            str(tiny_ome_tiff),
            labels=["DNA", "Membrane", "Keratin"],
            windows=[(100, 25000), (0, 9000), (0, 20000)],
        )
    }
    with OmeroServer(images, png=True) as server:
        summary = info_json(capsys, ["7", "--omero", server.url])
        source = md.open_omero(server.url, 7)
    assert summary["format"] == "OMERO"
    assert [c["name"] for c in summary["channels"]] == ["DNA", "Membrane", "Keratin"]
    assert summary["channels"][0]["window"] == [100, 25000]
    assert summary["request"].startswith("/7/0/0/?c=1|100:25000$")
    check_round_trip(summary, source)


def test_info_on_the_emulating_minerva_cloud(capsys, minerva_environment, tiny_ome_tiff) -> None:
    summary = info_json(capsys, ["--minerva", TINY])
    local = md.open_image(tiny_ome_tiff).info
    assert summary["format"] == "Minerva"
    assert [c["name"] for c in summary["channels"]] == [c.name for c in local.channels]
    assert summary["size"]["x"] == local.width
    md.parse_request(summary["request"])


def test_info_without_an_image_is_one_clear_error(capsys) -> None:
    assert main(["info"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minerva-dask: error: no image given") and err.count("\n") == 1
