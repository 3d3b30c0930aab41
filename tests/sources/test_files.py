"""Every OME-TIFF, OME-Zarr and TIFF pyramid in ../shared/data opens and reads correctly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import minerva_dask as md
from tests.reference import independent_pyramid
from tests.sources.contract import SourceContract

# path: (size_c, dtype, [(width, height) per level], channel names or None, size_z)
SAMPLES = {
    "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff": (
        48,
        "uint16",
        [(100, 100), (50, 50), (25, 25), (12, 12)],
        None,
        1,
    ),
    "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff": (
        2,
        "uint8",
        [(2048, 2048), (1024, 1024), (512, 512), (256, 256)],
        ["CHAN_0", "CHAN_1"],
        1,
    ),
    "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif": (
        3,
        "uint16",
        [(2048, 2048), (1024, 1024)],
        None,
        1,
    ),
    "ome-tiff/interleaved-4sample-subifd.ome.tiff": (
        4,
        "uint8",
        [(26, 25), (13, 12), (6, 6), (3, 3)],
        None,
        1,
    ),
    "ome-tiff/4ch-uint16-64x64.ome.tif": (4, "uint16", [(64, 64)], None, 1),
    "ome-tiff/multi-channel-z-series.ome.tif": (3, "int8", [(439, 167)], None, 5),
    "ome-tiff/multi-channel-deflate.ome.tif": (3, "int8", [(439, 167)], None, 1),
    "other-tiff/CMU-1-Small-Region.svs": (3, "uint8", [(2220, 2967)], None, 1),
    "other-tiff/boxes-page-pyramid.tiff": (
        3,
        "uint8",
        [(300, 250), (150, 125), (75, 62), (37, 31)],
        None,
        1,
    ),
    "other-tiff/small_vectra.qptiff": (3, "uint8", [(1920, 1440)], None, 1),
    "ome-zarr/exemplar-001.crop.image.ome.zarr": (
        4,
        "uint16",
        [(250, 250), (125, 125), (62, 62), (31, 31), (15, 15)],
        ["DNA", "FDX1", "CD1D", "CD357"],
        1,
    ),
    "ome-zarr/exemplar-001.crop.segmentations.ome.zarr": (
        2,
        "uint16",
        [(250, 250), (125, 125), (62, 62), (31, 31), (15, 15)],
        ["cell", "circle"],
        1,
    ),
    "ome-zarr/arange-v0.4.zarr": (1, "uint16", [(10, 10), (5, 5), (2, 2)], None, 1),
    "ome-zarr/arange-v0.5.zarr": (1, "uint16", [(10, 10), (5, 5), (2, 2)], None, 1),
    "ome-zarr/binary-2ch-v0.5.zarr": (
        2,
        "uint8",
        [(64, 64), (32, 32), (16, 16), (8, 8), (4, 4)],
        None,
        1,
    ),
    "ome-zarr/blobs_image_v04.ome.zarr": (3, "float64", [(12, 12)], ["0", "1", "2"], 1),
    "ome-zarr/blobs_image_v05.ome.zarr": (3, "float64", [(12, 12)], ["0", "1", "2"], 1),
    "ome-zarr/bioformats2raw-layout/data.zarr": (3, "int8", [(439, 167), (219, 83)], None, 1),
}
EDGE_CASES = {
    "edge-cases/ome-sizec-mismatch.ome.tiff": (
        2,
        "uint8",
        [(512, 512), (256, 256), (128, 128), (64, 64)],
        None,
        1,
    ),
    "edge-cases/ome-misdeclared-samples.ome.tiff": (2, "uint16", [(500, 500)], None, 1),
}


def _open(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return md.open_image(path)


@pytest.mark.parametrize("name", sorted(SAMPLES) + sorted(EDGE_CASES))
def test_sample_opens_with_the_right_shapes(shared_data, name: str) -> None:
    size_c, dtype, sizes, names, size_z = {**SAMPLES, **EDGE_CASES}[name]
    info = _open(shared_data / name).info
    assert info.size_c == size_c
    assert info.dtype == np.dtype(dtype)
    assert [(lv.width, lv.height) for lv in info.levels] == sizes
    assert info.size_z == size_z
    if names is not None:
        assert [c.name for c in info.channels] == names


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_ome_xml_that_disagrees_with_the_tiff_warns_and_the_tiff_wins(shared_data, name):
    with pytest.warns(UserWarning, match="reading"):
        md.open_image(shared_data / name)


def test_consistent_files_open_without_warnings(shared_data) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for name in SAMPLES:
            md.open_image(shared_data / name)


def test_misdeclared_samples_read_as_two_real_channels(shared_data) -> None:
    source = _open(shared_data / "edge-cases/ome-misdeclared-samples.ome.tiff")
    planes = md.sources.read_level(source, 0)
    assert (int(planes.min()), int(planes.max())) == (72, 52220)


def test_arange_values_and_non_power_of_two_factors(shared_data) -> None:
    arange = md.open_image(shared_data / "ome-zarr/arange-v0.5.zarr")
    level0 = md.sources.read_level(arange, 0)
    assert level0[0].tolist() == np.arange(100).reshape(10, 10).tolist()
    assert arange.info.levels[2].downsample == (4.0, 4.0)  # from scale, not 10 / 2
    exemplar = md.open_image(shared_data / "ome-zarr/exemplar-001.crop.image.ome.zarr")
    factors = [round(lv.downsample[0], 3) for lv in exemplar.info.levels]
    assert factors == [1.0, 2.0, 4.032, 8.065, 16.667]


@pytest.mark.parametrize(
    ("store", "name"),
    [
        ("exemplar-001.crop.image.ome.zarr", "exemplar-001.crop.image"),  # multiscale "/"
        ("binary-2ch-v0.5.zarr", "binary-2ch-v0.5"),  # "/" again, a .zarr store
        ("blobs_image_v05.ome.zarr", "blobs_image"),  # "/images/blobs_image": its last part
        ("arange-v0.5.zarr", "image"),  # a real name is kept
    ],
)
def test_ome_zarr_without_a_real_name_is_named_after_its_store(shared_data, tmp_path, store, name):
    import tifffile

    source = md.open_image(shared_data / "ome-zarr" / store)
    assert source.info.name == name
    out = tmp_path / "named.ome.tif"
    md.crop(None, out, image=source, max_size=64)
    with tifffile.TiffFile(out) as tif:
        assert f'Name="{name} (rendered)"' in tif.ome_metadata


def test_metadata_from_ome_xml_and_omero_block(shared_data) -> None:
    cycif = md.open_image(shared_data / "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff")
    assert cycif.info.pixel_size_um == (10000.0, 10000.0)
    assert cycif.info.channels[0].window == (0.0, 65535.0)
    exemplar = md.open_image(shared_data / "ome-zarr/exemplar-001.crop.image.ome.zarr")
    assert exemplar.info.channels[0].color == (1.0, 1.0, 1.0)
    assert exemplar.info.channels[0].window == (0.0, 65535.0)
    svs = md.open_image(shared_data / "other-tiff/CMU-1-Small-Region.svs")
    assert [c.color for c in svs.info.channels] == [(1, 0, 0), (0, 1, 0), (0, 0, 1)]


def test_missing_and_unreadable_files_name_the_problem(shared_data, tmp_path) -> None:
    with pytest.raises(md.SourceNotFoundError, match="no such file"):
        md.open_image(tmp_path / "absent.ome.tif")
    bad = tmp_path / "bad.ome.tif"
    bad.write_bytes(b"not a tiff at all")
    with pytest.raises(md.SourceError, match="not a readable TIFF"):
        md.open_image(bad)
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(md.SourceError, match="cannot tell the image format"):
        md.open_image(other)
    import zarr

    zarr.open_group(tmp_path / "plain.zarr", mode="w")
    with pytest.raises(md.SourceError, match="without OME-NGFF"):
        md.open_image(tmp_path / "plain.zarr")


CONTRACT_FILES = [
    "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif",
    "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",
    "ome-tiff/interleaved-4sample-subifd.ome.tiff",
    pytest.param(  # 48 channels: seconds of reads
        "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff", marks=pytest.mark.slow
    ),
    "other-tiff/boxes-page-pyramid.tiff",
    "ome-zarr/exemplar-001.crop.image.ome.zarr",
    "ome-zarr/arange-v0.4.zarr",
    "ome-zarr/bioformats2raw-layout/data.zarr",
    "ome-zarr/blobs_image_v05.ome.zarr",
    "edge-cases/ome-sizec-mismatch.ome.tiff",
]


class TestSampleContract(SourceContract):
    @pytest.fixture(autouse=True, params=CONTRACT_FILES)
    def _sample(self, request, shared_data) -> None:
        self.path = shared_data / request.param

    def make_source(self):
        return _open(self.path)

    def expected_levels(self):
        return independent_pyramid(self.path)[0]


class TestGeneratedContract(SourceContract):
    @pytest.fixture(autouse=True, params=["tiff", "zarr"])
    def _sample(self, request, tiny_ome_tiff, tiny_ome_zarr) -> None:
        self.path = tiny_ome_tiff if request.param == "tiff" else tiny_ome_zarr

    def make_source(self):
        return md.open_image(self.path)

    def expected_levels(self):
        return independent_pyramid(self.path)[0]
