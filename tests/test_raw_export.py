"""Raw region export (``crop --raw``, ``md.crop(..., raw=True)``, ``md.raw_region``): the
shown channels of a request's region, unrendered, in OME-Zarr and OME-TIFF, equal to
tifffile's own read of the same region and level."""

from __future__ import annotations

import io

import numpy as np
import pytest
import tifffile
import zarr

import minerva_dask as md
from minerva_dask.cli import main
from minerva_dask.errors import OutputError, RequestError
from minerva_dask.writers._meta import OutputMetadata

CYCIF = "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff"
# 5 of the 48 channels, 1-based in the URL: 2, 5, 11, 30, 47
SHOWN = [1, 4, 10, 29, 46]
COLORS = ["FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF"]
WINDOWS = [(100, 2000), (0, 3000), (10, 900), (5, 60000), (0, 1000)]
C = ",".join(f"{i + 1}|{s}:{e}${c}" for i, (s, e), c in zip(SHOWN, WINDOWS, COLORS, strict=True))
# (max_size, level read, level-pixel box x0, y0, x1, y1) for region 10,20,70,60
LEVELS = {"full": (5000, 0, (10, 20, 80, 80)), "level-1": (35, 1, (5, 10, 40, 40))}


def request(max_size: int) -> str:
    return f"/0/0/0/?c={C}&region=10,20,70,60&max_size={max_size}"


def tifffile_region(path, level: int, box) -> np.ndarray:
    x0, y0, x1, y1 = box
    with tifffile.TiffFile(path) as tif:
        return tif.series[0].levels[level].asarray()[SHOWN, y0:y1, x0:x1]


@pytest.fixture(scope="module")
def cycif(shared_data):
    return shared_data / CYCIF


@pytest.mark.parametrize("version", ["0.5", "0.4"])
@pytest.mark.parametrize("case", LEVELS)
def test_raw_ome_zarr_of_5_of_48_channels_equals_tifffiles_read(
    cycif, tmp_path, case, version
) -> None:
    max_size, level, box = LEVELS[case]
    out = tmp_path / "raw.ome.zarr"
    result = md.crop(request(max_size), out, image=cycif, raw=True, zarr_version=version)
    assert result.level == level
    group = zarr.open_group(str(out), mode="r")
    stored = group["0"][...]
    assert stored.dtype == np.uint16
    np.testing.assert_array_equal(stored, tifffile_region(cycif, level, box))
    attrs = dict(group.attrs)
    ome = attrs["ome"] if version == "0.5" else attrs
    channels = ome["omero"]["channels"]
    assert [c["label"] for c in channels] == [f"Channel {i}" for i in SHOWN]
    assert [c["color"] for c in channels] == COLORS
    assert [(c["window"]["start"], c["window"]["end"]) for c in channels] == WINDOWS
    scale = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"][0]["scale"]
    assert scale == [1.0, 10000.0 * 2**level, 10000.0 * 2**level]  # PhysicalSize x level
    models = pytest.importorskip(f"ome_zarr_models.v0{version[-1]}")
    models.Image.from_zarr(zarr.open_group(str(out), mode="r"))  # validates


def test_raw_ome_zarr_lower_levels_are_2x2_means_in_the_source_dtype(cycif, tmp_path) -> None:
    from minerva_dask.writers._pyramid import downsample_2x

    out = tmp_path / "levels.ome.zarr"
    md.crop(f"/0/0/0/?c={C}&region=0,0,100,100", out, image=cycif, raw=True, chunk=32)
    group = zarr.open_group(str(out), mode="r")
    assert len(group) == 3  # 100 -> 50 -> 25 in 32 px chunks
    for level in (1, 2):
        above = np.moveaxis(group[str(level - 1)][...], 0, 2)
        expected = np.moveaxis(downsample_2x(above), 2, 0)
        np.testing.assert_array_equal(group[str(level)][...], expected)


def test_raw_region_is_lazy_and_says_what_it_holds(cycif) -> None:
    region = md.raw_region(md.open_image(cycif), md.parse_request(request(35)))
    assert region.shape == (5, 30, 35) and region.dtype == np.uint16
    assert region.level == 1 and region.pixel_size_um == (20000.0, 20000.0)
    assert [(c.name, c.color, c.window) for c in region.channels] == [
        (f"Channel {i}", c, w) for i, c, w in zip(SHOWN, COLORS, WINDOWS, strict=True)
    ]
    np.testing.assert_array_equal(region.compute(), tifffile_region(cycif, 1, (5, 10, 40, 40)))


@pytest.mark.slow
def test_the_raw_ome_xml_validates_and_names_and_colours_the_channels(cycif) -> None:
    """The OME-XML the TIFF writer is given (Name, Color per plane), through tifffile's
    OME writer, validates against the 2016-06 schema."""
    ome_types = pytest.importorskip("ome_types")
    pytest.importorskip("xmlschema")
    region = md.raw_region(md.open_image(cycif), md.parse_request(request(5000)))
    meta = OutputMetadata.of(region)
    buffer = io.BytesIO()
    px, py = meta.pixel_size_um
    tifffile.imwrite(
        buffer,
        region.compute(),
        ome=True,
        metadata={
            "axes": "CYX",
            "Name": meta.name,
            "PhysicalSizeX": px,
            "PhysicalSizeY": py,
            "Channel": meta.ome_channels(),
            "Description": meta.description(),
        },
    )
    xml = tifffile.TiffFile(io.BytesIO(buffer.getvalue())).ome_metadata
    ome = ome_types.from_xml(xml, validate=True)
    channels = ome.images[0].pixels.channels
    assert [c.name for c in channels] == [f"Channel {i}" for i in SHOWN]
    assert [c.color.as_hex(format="long")[1:7].upper() for c in channels] == COLORS
    assert ome.images[0].pixels.type.value == "uint16"


@pytest.mark.parametrize("case", LEVELS)
def test_raw_ome_tiff_of_5_of_48_channels_equals_tifffiles_read(cycif, tmp_path, case) -> None:
    ome_types = pytest.importorskip("ome_types")
    max_size, level, box = LEVELS[case]
    out = tmp_path / "raw.ome.tif"
    md.crop(request(max_size), out, image=cycif, raw=True)
    with tifffile.TiffFile(out) as tif:
        np.testing.assert_array_equal(tif.series[0].asarray(), tifffile_region(cycif, level, box))
        xml = tif.ome_metadata
    ome = ome_types.from_xml(xml, validate=True)
    pixels = ome.images[0].pixels
    assert [c.name for c in pixels.channels] == [f"Channel {i}" for i in SHOWN]
    assert [c.color.as_hex(format="long")[1:7].upper() for c in pixels.channels] == COLORS
    assert pixels.physical_size_x == pytest.approx(10000.0 * 2**level)


def test_png_is_refused_for_a_raw_export(cycif, tmp_path, capsys) -> None:
    out = tmp_path / "raw.png"
    assert main(["crop", request(35), "--image", str(cycif), "--raw", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "PNG cannot hold" in err and err.count("\n") == 1
    assert not out.exists()
    with pytest.raises(OutputError, match="PNG cannot hold"):
        md.crop(request(35), out, image=cycif, raw=True)


def test_rendering_options_are_refused_for_a_raw_export(cycif, tmp_path) -> None:
    with pytest.raises(RequestError, match="a raw export has none"):
        md.crop(request(35), tmp_path / "a.ome.zarr", image=cycif, raw=True, gamma=2.0)


def test_the_cli_writes_a_raw_ome_zarr(cycif, tmp_path) -> None:
    out = tmp_path / "cli.ome.zarr"
    assert main(["crop", request(35), "--image", str(cycif), "--raw", "-o", str(out), "-q"]) == 0
    stored = zarr.open_group(str(out), mode="r")["0"][...]
    np.testing.assert_array_equal(stored, tifffile_region(cycif, 1, (5, 10, 40, 40)))


@pytest.mark.parametrize("kind", ["intmax", "intmean"])
def test_raw_exports_of_a_projection_equal_numpy_over_the_planes(
    shared_data, tmp_path, kind
) -> None:
    path = shared_data / "ome-tiff/multi-channel-z-series.ome.tif"
    data = tifffile.imread(path)  # (c, z, y, x) int8
    out = tmp_path / f"{kind}.ome.zarr"
    url = f"/0/0/0/?c=1,3&region=0,0,439,167&p={kind}|1:4"
    md.crop(url, out, image=path, raw=True)
    planes = data[[0, 2], 1:5]
    expected = planes.max(axis=1) if kind == "intmax" else planes.mean(axis=1).astype(np.int8)
    group = zarr.open_group(str(out), mode="r")
    stored = group["0"][...]
    assert stored.dtype == np.int8
    np.testing.assert_array_equal(stored, expected)
    assert group.attrs["minerva-dask"]["projection"] == f"{kind}|1:4"


def test_z_and_t_are_kept_as_asked(shared_data, tmp_path) -> None:
    path = shared_data / "ome-tiff/multi-channel-z-series.ome.tif"
    data = tifffile.imread(path)
    out = tmp_path / "z3.ome.zarr"
    md.crop("/0/3/0/?c=2&region=0,0,439,167", out, image=path, raw=True)
    group = zarr.open_group(str(out), mode="r")
    np.testing.assert_array_equal(group["0"][0], data[1, 3])
    assert (group.attrs["minerva-dask"]["z"], group.attrs["minerva-dask"]["t"]) == (3, 0)


@pytest.mark.slow
def test_raw_from_http_and_s3_equals_the_local_file(cycif, tmp_path, moto_server) -> None:
    import boto3

    from tests.servers.static import StaticServer

    local = md.raw_region(md.open_image(cycif), md.parse_request(request(35))).compute()
    with StaticServer(str(cycif.parent)) as url:
        out = tmp_path / "http.ome.zarr"
        md.crop(request(35), out, image=f"{url}/{cycif.name}", raw=True)
        np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["0"][...], local)
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    s3.create_bucket(Bucket="raw-export")
    s3.upload_file(str(cycif), "raw-export", "cycif.ome.tiff")
    options = {"client_kwargs": {"endpoint_url": moto_server}}
    source = md.open_image("s3://raw-export/cycif.ome.tiff", storage_options=options)
    out = tmp_path / "s3.ome.zarr"
    md.crop(request(35), out, image=source, raw=True)
    np.testing.assert_array_equal(zarr.open_group(str(out), mode="r")["0"][...], local)


def test_raw_from_minervas_raw_tiles_equals_the_published_image(
    minerva, tiny_data, tmp_path
) -> None:
    from tests.conftest import TINY

    source = md.open_minerva(TINY, **minerva.settings)
    url = "/0/0/0/?c=1|0:9000$FF0000,3|0:9000$00FF00&region=100,50,300,200&max_size=5000"
    out = tmp_path / "minerva.ome.zarr"
    md.crop(url, out, image=source, raw=True)
    stored = zarr.open_group(str(out), mode="r")["0"][...]
    np.testing.assert_array_equal(stored, tiny_data[[0, 2], 50:250, 100:400])


@pytest.mark.slow
def test_raw_from_omero_is_refused_clearly(tiny_ome_tiff, tmp_path) -> None:
    from tests.servers.omero import OmeroServer, ServedImage

    images = {1: ServedImage.from_tiff(str(tiny_ome_tiff))}
    with OmeroServer(images, png=True) as server:
        source = md.open_omero(server.url, 1, username="alice", password="wonderland")
        with pytest.raises(RequestError, match=r"rendered 8-bit tiles.*cannot be exported raw"):
            md.crop(
                "/1/0/0/?c=1&region=0,0,100,100", tmp_path / "o.ome.zarr", image=source, raw=True
            )
    assert not (tmp_path / "o.ome.zarr").exists()


def test_a_raw_export_never_replaces_its_input(shared_data, tmp_path) -> None:
    import shutil

    image = tmp_path / "exemplar.ome.zarr"
    shutil.copytree(shared_data / "ome-zarr/exemplar-001.crop.image.ome.zarr", image)
    before = sorted(p.name for p in image.rglob("*"))
    with pytest.raises(OutputError):
        md.crop("/0/0/0/?c=1,2&region=0,0,250,250", image, image=image, raw=True, overwrite=True)
    assert sorted(p.name for p in image.rglob("*")) == before


@pytest.mark.slow
def test_an_interrupted_raw_export_resumes_skipping_written_chunks(cycif, tmp_path) -> None:
    from tests.failing_source import FailingSource

    source = md.open_image(cycif)
    out = tmp_path / "resume.ome.zarr"
    url = f"/0/0/0/?c={C}&region=0,0,100,100"
    failing = FailingSource(source, 64)  # the last row of 32 px chunks fails
    with pytest.raises(OSError, match="the network went away"):
        md.crop(url, out, image=failing, raw=True, chunk=32, shard=1)  # an object a chunk
    assert not out.exists()
    result = md.crop(url, out, image=source, raw=True, chunk=32, shard=1, resume=True)
    assert result.chunks_skipped >= 8  # the two rows of four chunks written before
    stored = zarr.open_group(str(out), mode="r")["0"][...]
    np.testing.assert_array_equal(stored, tifffile_region(cycif, 0, (0, 0, 100, 100)))


def test_a_refused_raw_format_suggests_the_formats_a_raw_export_writes(cycif, tmp_path) -> None:
    with pytest.raises(OutputError, match=r"cannot hold: write \.ome\.tif or \.ome\.zarr"):
        md.crop(request(35), tmp_path / "raw.png", image=cycif, raw=True)


@pytest.mark.parametrize("option", [["--raw"], ["--format", "ome-zarr"]])
def test_groups_refuse_a_raw_or_non_deep_zoom_export_rather_than_ignore_it(
    cycif, tmp_path, capsys, option
) -> None:
    out = tmp_path / "viewer"
    argv = ["crop", "--image", str(cycif), "--group", f"A={request(35)}", "-o", str(out)]
    assert main([*argv, *option]) == 2
    err = capsys.readouterr().err
    assert err.startswith("minerva-dask: error: --group") and err.count("\n") == 1
    assert not out.exists()
