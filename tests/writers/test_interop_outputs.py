"""Every reader accepts our outputs: OME-Zarr (NGFF 0.4 and 0.5) and pyramidal OME-TIFF.

Each export (a small one-level image, a multi-level crop of the demo slide, a crop with
odd sides, a TIFF of at most 128 px with several levels) is validated against the
format's own models or schema, opened by independent readers at every level, and its
pixels checked: level 0 equals the PNG of the same request, each lower level the 2 x 2
mean (``downsample_2x``) of the level above. A reader that is not installed skips its
tests with the reason (``pip install -e .[test]`` installs them all: the ``interop``
extra).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

import minerva_dask as md
from minerva_dask.writers._pyramid import downsample_2x
from minerva_dask.writers.ome_tiff import tiff_tile

pytestmark = pytest.mark.slow  # independent readers and schema validators

SAMPLE = "ome-tiff/4ch-uint16-64x64.ome.tif"
DEMO_CHANNELS = "c=1|600:24000$0000FF,2|400:9000$00FF00,3|700:15000$FF0000"

# id: (image, request (None: the image's own defaults, whole), export chunk, levels)
ZARR_CASES = {
    # 64 x 64 under the default 1024 px chunk: one level, one partial chunk
    "small-one-level": ("sample", None, None, 1),
    # 320 x 200 in 64 px chunks: 320 -> 160 -> 80 -> 40
    "multi-level": ("demo", f"/0/0/0/?{DEMO_CHANNELS}&region=1000,800,320,200", 64, 4),
    # 131 x 67 in 32 px chunks, odd at every level: 131 -> 66 -> 33 -> 17
    "odd-sizes": ("demo", f"/0/0/0/?{DEMO_CHANNELS}&region=1501,977,131,67", 32, 4),
}
TIFF_CASES = {
    # the default 1024 px chunk: tile 64 (a 512 px tile made pyvips refuse the file)
    "small-one-level": ("sample", None, None, 1),
    # 100 x 90 (<= 128 px) in 32 px bands: tile 32, 100 -> 50 -> 25
    "small-multi-level": ("demo", f"/0/0/0/?{DEMO_CHANNELS}&region=2000,1500,100,90", 32, 3),
    # 1200 x 700, default chunk: tile 512, 1200 -> 600 -> 300
    "multi-level": ("demo", f"/0/0/0/?{DEMO_CHANNELS}&region=0,0,2400,1400&max_size=1200", None, 3),
    # 131 x 67 in 32 px bands: tile 32, 131 -> 66 -> 33 -> 17
    "odd-sizes": ("demo", f"/0/0/0/?{DEMO_CHANNELS}&region=1501,977,131,67", 32, 4),
}


@pytest.fixture(scope="module")
def images(demo_path: Path, shared_data: Path) -> dict[str, Path]:
    return {"demo": demo_path, "sample": shared_data / SAMPLE}


@pytest.fixture(scope="module")
def exports(images, tmp_path_factory):
    """``export(case, kind)`` -> (path, PNG pixels of the same request), made once."""
    folder = tmp_path_factory.mktemp("interop")
    made: dict[tuple[str, str], tuple[Path, np.ndarray]] = {}

    def export(case: str, kind: str) -> tuple[Path, np.ndarray]:
        if (case, kind) not in made:
            cases = TIFF_CASES if kind == "tiff" else ZARR_CASES
            image, request, chunk, levels = cases[case]
            png = folder / f"{kind}-{case}.png"
            md.crop(request, png, image=images[image])
            suffix = ".ome.tif" if kind == "tiff" else ".ome.zarr"
            path = folder / f"{kind}-{case}{suffix}"
            options = {} if chunk is None else {"chunk": chunk}
            if kind != "tiff":
                options["zarr_version"] = kind
            result = md.crop(request, path, image=images[image], **options)
            assert result.levels == levels
            made[case, kind] = path, imagecodecs.png_decode(png.read_bytes())
        return made[case, kind]

    return export


def need(module: str, package: str):
    """Import ``module``, or skip: ``package`` is not installed."""
    return pytest.importorskip(module, reason=f"{package} not installed (the interop extra)")


def check_pixels(levels: list[np.ndarray], png: np.ndarray, count: int) -> None:
    """Level 0 is the PNG; each lower level the 2 x 2 mean of the level above."""
    assert len(levels) == count
    np.testing.assert_array_equal(levels[0], png)
    for index, (above, below) in enumerate(itertools.pairwise(levels), start=1):
        np.testing.assert_array_equal(below, downsample_2x(above), err_msg=f"level {index}")


def multiscale(path: Path) -> dict:
    attrs = dict(zarr.open_group(str(path), mode="r").attrs)
    return (attrs.get("ome") or attrs)["multiscales"][0]


# OME-Zarr ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("case", ZARR_CASES)
def test_ome_zarr_validates_with_ome_zarr_models(exports, case, version) -> None:
    models = need(f"ome_zarr_models.v0{version[-1]}", "ome-zarr-models")
    path, _ = exports(case, version)
    image = models.Image.from_zarr(zarr.open_group(str(path), mode="r"))
    datasets = image.ome_attributes.multiscales[0].datasets
    assert [d.path for d in datasets] == [str(i) for i in range(ZARR_CASES[case][3])]


@pytest.mark.parametrize("case", ZARR_CASES)
def test_ome_zarr_05_arrays_name_their_dimensions_after_the_axes(exports, case) -> None:
    path, _ = exports(case, "0.5")
    group = zarr.open_group(str(path), mode="r")
    axes = [axis["name"] for axis in multiscale(path)["axes"]]
    for dataset in multiscale(path)["datasets"]:
        assert list(group[dataset["path"]].metadata.dimension_names) == axes == ["c", "y", "x"]


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("case", ZARR_CASES)
def test_ome_zarr_py_reads_every_level(exports, case, version) -> None:
    io = need("ome_zarr.io", "ome-zarr")
    reader = need("ome_zarr.reader", "ome-zarr")
    path, png = exports(case, version)
    nodes = list(reader.Reader(io.parse_url(str(path)))())
    image = nodes[0]
    assert image.metadata["axes"][0]["name"] == "c"
    assert image.metadata["channel_names"] == ["Red", "Green", "Blue"]
    levels = [np.moveaxis(np.asarray(level), 0, 2) for level in image.data]
    check_pixels(levels, png, ZARR_CASES[case][3])


@pytest.mark.parametrize("version", ["0.4", "0.5"])
@pytest.mark.parametrize("case", ZARR_CASES)
def test_ngff_zarr_reads_every_level(exports, case, version) -> None:
    ngff_zarr = need("ngff_zarr", "ngff-zarr")
    path, png = exports(case, version)
    multiscales = ngff_zarr.from_ngff_zarr(str(path), validate=True)  # its JSON schemas
    assert [c.label for c in multiscales.metadata.omero.channels] == ["Red", "Green", "Blue"]
    first = multiscales.images[0].scale["x"]
    for index, image in enumerate(multiscales.images):
        assert tuple(image.dims) == ("c", "y", "x")
        assert image.scale["x"] == image.scale["y"] == pytest.approx(first * 2**index)
    levels = [np.moveaxis(np.asarray(image.data), 0, 2) for image in multiscales.images]
    check_pixels(levels, png, ZARR_CASES[case][3])


# OME-TIFF ---------------------------------------------------------------------------


@pytest.mark.parametrize("case", TIFF_CASES)
def test_ome_tiff_xml_validates_against_the_2016_06_schema(exports, case) -> None:
    ome_types = need("ome_types", "ome-types")
    need("xmlschema", "xmlschema (ome-types validates with it)")
    path, png = exports(case, "tiff")
    with tifffile.TiffFile(path) as tif:
        xml = tif.ome_metadata
    assert 'xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"' in xml
    ome = ome_types.from_xml(xml, validate=True)  # the schema shipped in ome-types
    pixels = ome.images[0].pixels
    assert (pixels.size_x, pixels.size_y, pixels.size_c) == (png.shape[1], png.shape[0], 3)
    assert pixels.type.value == "uint8"


@pytest.mark.parametrize("case", TIFF_CASES)
def test_pyvips_opens_every_level(exports, case) -> None:
    pyvips = need("pyvips", "pyvips")
    path, png = exports(case, "tiff")
    count = TIFF_CASES[case][3]
    levels = [pyvips.Image.new_from_file(str(path), page=0).numpy()]
    levels += [pyvips.Image.tiffload(str(path), subifd=i).numpy() for i in range(count - 1)]
    check_pixels(levels, png, count)


@pytest.mark.parametrize("case", TIFF_CASES)
def test_tifffile_reads_every_level_of_an_ome_pyramid(exports, case) -> None:
    path, png = exports(case, "tiff")
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.series) == 1
        series = tif.series[0]
        assert series.axes == "YXS" and series.is_pyramidal == (len(series.levels) > 1)
        levels = [level.asarray() for level in series.levels]
    check_pixels(levels, png, TIFF_CASES[case][3])


@pytest.mark.parametrize("case", TIFF_CASES)
def test_ome_tiff_tile_is_a_power_of_two_within_the_shorter_side(exports, case) -> None:
    path, png = exports(case, "tiff")
    short = -(-min(png.shape[:2]) // 16) * 16
    with tifffile.TiffFile(path) as tif:
        pages = [level.keyframe for level in tif.series[0].levels]
        tiles = {(page.tilelength, page.tilewidth) for page in pages}
    assert len(tiles) == 1
    tile = tiles.pop()[0]
    assert tile & (tile - 1) == 0 and 16 <= tile <= min(short, 512)
    assert tile * 2 > min(short, 512, TIFF_CASES[case][2] or 1024)  # the largest such


def test_tiff_tile_rule() -> None:
    # the shorter side rounded up to 16, then the largest power of two from 16 to 512
    assert [tiff_tile(n, 5000, 1024) for n in (1, 16, 17, 100, 128, 129, 511, 4000)] == [
        16,
        16,
        32,
        64,
        128,
        128,
        512,
        512,
    ]
    assert tiff_tile(4000, 4000, 96) == 64  # within the band, which then grows to 128


def test_a_chunk_that_is_not_a_power_of_two_grows_to_whole_tiles(demo_path, tmp_path) -> None:
    request = f"/0/0/0/?{DEMO_CHANNELS}&region=700,400,200,150"
    md.crop(request, tmp_path / "a.png", image=demo_path)
    result = md.crop(request, tmp_path / "a.ome.tif", image=demo_path, chunk=48)
    assert result.levels == 4  # tile 32 (within 48), bands of 64 rows: 200 -> 100 -> 50 -> 25
    with tifffile.TiffFile(tmp_path / "a.ome.tif") as tif:
        levels = [level.asarray() for level in tif.series[0].levels]
        assert {level.keyframe.tilewidth for level in tif.series[0].levels} == {32}
    check_pixels(levels, imagecodecs.png_decode((tmp_path / "a.png").read_bytes()), 4)
