"""Malformed metadata is one clear line naming the field (a SourceError, RemoteError or
RequestError), never a traceback: OME-Zarr multiscales, OMERO imgData, OME-XML."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import zarr

import minerva_dask as md
from minerva_dask.errors import RemoteError, RequestError, SourceError
from minerva_dask.imgdata import imgdata_from_ome_xml
from minerva_dask.sources.omero import info_from_imgdata

# -- OME-Zarr ---------------------------------------------------------------------------


def _zarr(path, *, dtype="uint16", level1_shape=(16, 16), zarr_format=2):
    """A two-level (32 x 32, then ``level1_shape``) OME-Zarr; returns its attributes file."""
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    group.create_array("0", shape=(32, 32), chunks=(16, 16), dtype=dtype)
    chunks = (16,) * len(level1_shape)
    group.create_array("1", shape=level1_shape, chunks=chunks, dtype="uint16")
    multiscale = {
        "version": "0.4",
        "axes": [{"name": "y", "type": "space", "unit": "micrometer"}, {"name": "x"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]},
            {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [2, 2]}]},
        ],
    }
    group.attrs["multiscales"] = [multiscale]
    return path / (".zattrs" if zarr_format == 2 else "zarr.json")


def _edit_attrs(attrs_file, change) -> None:
    document = json.loads(attrs_file.read_text())
    attrs = document.get("attributes", document)
    change(attrs)
    attrs_file.write_text(json.dumps(document))


def _set_scale(value):
    def change(attrs):
        attrs["multiscales"][0]["datasets"][1]["coordinateTransformations"][0]["scale"] = value

    return change


def _set_path(value):
    def change(attrs):
        attrs["multiscales"][0]["datasets"][1]["path"] = value

    return change


def _set(key, value):
    def change(attrs):
        attrs[key] = value

    return change


def _set_multiscale(key, value):
    def change(attrs):
        attrs["multiscales"][0][key] = value

    return change


ZARR_ATTRS = {  # case: (change to the attributes, words the message must hold)
    "scale-zero": (_set_scale([0, 2]), "datasets[1].coordinateTransformations[0].scale"),
    "scale-negative": (_set_scale([-2, 2]), "datasets[1].coordinateTransformations[0].scale"),
    "scale-string": (_set_scale(["2", 2]), "holds '2': every factor must be a number above"),
    "scale-not-a-list": (_set_scale("2,2"), "coordinateTransformations[0].scale must be a list"),
    "path-dotdot": (_set_path("../0"), "datasets[1].path '../0' must be a relative path"),
    "path-absolute": (_set_path("/etc"), "datasets[1].path '/etc' must be a relative path"),
    "path-dotdot-inside": (_set_path("0/../1"), "datasets[1].path '0/../1'"),
    "path-number": (_set_path(1), "datasets[1].path 1 must be a relative path"),
    "multiscales-string": (_set("multiscales", "0"), "multiscales must be a non-empty list"),
    "multiscales-of-strings": (_set("multiscales", ["0"]), "multiscales[0] must be an object"),
    "multiscales-dict": (_set("multiscales", {"datasets": []}), "multiscales must be a"),
    "datasets-not-a-list": (_set_multiscale("datasets", {"path": "0"}), "datasets must be a"),
    "dataset-not-an-object": (_set_multiscale("datasets", ["0"]), "datasets[0] must be an obj"),
    "axes-not-a-list": (_set_multiscale("axes", "yx"), "multiscales[0].axes must be a list"),
    "axis-without-name": (_set_multiscale("axes", [{"type": "space"}, "x"]), "axes[0] must be"),
}


@pytest.mark.parametrize("case", ZARR_ATTRS)
def test_malformed_multiscales_are_one_line_naming_the_field(tmp_path, case) -> None:
    change, words = ZARR_ATTRS[case]
    path = tmp_path / "bad.ome.zarr"
    _edit_attrs(_zarr(path), change)
    with pytest.raises(SourceError) as info:
        md.open_image(path)
    message = str(info.value)
    assert words in message and "bad.ome.zarr" in message
    assert "\n" not in message


ZARR_ARRAYS = {  # case: (level-0 dtype, level-1 shape, zarr format, words in the message)
    "complex": ("complex64", (16, 16), 3, "datasets[0] ('0') has dtype complex64"),
    "unicode": ("<U4", (16, 16), 2, "has dtype <U4; images need integers"),
    "object-strings": (str, (16, 16), 2, "datasets[0] ('0') has dtype"),
    "structured": ([("a", "u1"), ("b", "<u2")], (16, 16), 2, "datasets[0] ('0') has dtype"),
    "datetime": ("datetime64[s]", (16, 16), 3, "has dtype datetime64[s]"),
    "ndim-mismatch": ("uint16", (2, 16, 16), 2, "datasets[1] ('1') has 3 dimensions"),
    "empty-level": ("uint16", (0, 16), 3, "datasets[1] ('1') has an empty dimension"),
}


@pytest.mark.parametrize("case", ZARR_ARRAYS)
def test_unusable_arrays_are_one_line_naming_the_dataset(tmp_path, case) -> None:
    dtype, shape, zarr_format, words = ZARR_ARRAYS[case]
    path = tmp_path / "bad.ome.zarr"
    _zarr(path, dtype=dtype, level1_shape=shape, zarr_format=zarr_format)
    with pytest.raises(SourceError) as info:
        md.open_image(path)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_an_array_zarr_cannot_open_is_one_line_naming_the_dataset(tmp_path) -> None:
    path = tmp_path / "objects.ome.zarr"
    _zarr(path)
    zarray = path / "1" / ".zarray"
    meta = json.loads(zarray.read_text())
    zarray.write_text(json.dumps({**meta, "dtype": "|O", "filters": None}))  # no object codec
    with pytest.raises(SourceError, match=r"dataset '1' cannot be opened: ValueError: .*\|O"):
        md.open_image(path)


def test_the_checks_pass_good_metadata(tmp_path) -> None:
    source = md.open_image(_zarr(tmp_path / "good.ome.zarr").parent)
    assert [lv.downsample for lv in source.info.levels] == [(1.0, 1.0), (2.0, 2.0)]


# -- OMERO imgData ------------------------------------------------------------------------

IMGDATA = {
    "size": {"width": 5000, "height": 3000, "z": 1, "t": 1, "c": 1},
    "meta": {"pixelsType": "uint16", "imageName": "x"},
    "tiles": True,
    "tile_size": {"width": 256, "height": 256},
    "levels": 2,
    "zoomLevelScaling": {"0": 1.0, "1": 0.5},
    "channels": [{"label": "DNA", "color": "0000FF", "window": {"start": 0, "end": 9}}],
}


def _imgdata(path: str, value):
    data = copy.deepcopy(IMGDATA)
    *parents, last = path.split(".")
    node = data
    for key in parents:
        node = node[key]
    node[last] = value
    return data


IMGDATA_CASES = {  # case: (field, bad value, words the message must hold)
    "width-negative": ("size.width", -5, "size.width"),
    "width-zero": ("size.width", 0, "size.width"),
    "height-zero": ("size.height", 0, "size.height"),
    "width-float": ("size.width", 5000.5, "size.width"),
    "width-string": ("size.width", "5000px", "size.width"),
    "width-bool": ("size.width", True, "size.width"),
    "width-huge": ("size.width", 10**15, "size.width"),
    "channels-zero": ("size.c", 0, "size.c"),
    "z-negative": ("size.z", -1, "size.z"),
    "t-string": ("size.t", "one", "size.t"),
    "tile-zero": ("tile_size.width", 0, "tile_size.width"),
    "tile-negative": ("tile_size.height", -256, "tile_size.height"),
    "tile-float": ("tile_size.width", 256.5, "tile_size.width"),
    "scaling-zero": ("zoomLevelScaling", {"0": 1.0, "1": 0.0}, "zoomLevelScaling"),
    "scaling-string": ("zoomLevelScaling", {"0": 1.0, "1": "half"}, "zoomLevelScaling"),
    "scaling-key": ("zoomLevelScaling", {"0": 1.0, "one": 0.5}, "zoomLevelScaling"),
    "scaling-list": ("zoomLevelScaling", [1.0, 0.5], "zoomLevelScaling"),
    "absurd-level-count": (
        "zoomLevelScaling",
        {str(i): 0.5**i for i in range(1000)},
        "zoomLevelScaling",
    ),
    "resolution-zero": ("resolutions", {"0": {"sizeX": 0, "sizeY": 3000}}, "resolutions"),
    "pixels-type": ("meta.pixelsType", "complex", "meta.pixelsType"),
    "size-not-an-object": ("size", [5000, 3000], "size"),
    "channels-count": ("size.c", 3, "imgData channels is '1 entries': size.c is 3"),
    "channels-not-a-list": ("channels", {"0": {}}, "imgData channels"),
    "channel-not-an-object": ("channels", ["DNA"], "imgData channels[0]"),
    "channel-colour-number": ("channels", [{"color": 255}], "imgData channels[0].color"),
}


@pytest.mark.parametrize("case", IMGDATA_CASES)
def test_malformed_imgdata_is_one_line_naming_the_field(case) -> None:
    field, value, words = IMGDATA_CASES[case]
    with pytest.raises(RemoteError) as info:
        info_from_imgdata(_imgdata(field, value))
    assert words in str(info.value) and "imgData" in str(info.value)
    assert "\n" not in str(info.value)


def test_good_imgdata_still_reads() -> None:
    info = info_from_imgdata(copy.deepcopy(IMGDATA))
    assert [(lv.width, lv.height) for lv in info.levels] == [(5000, 3000), (2500, 1500)]


# -- OME-XML to imgData -------------------------------------------------------------------

XML = (
    '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:1">'
    '<Pixels DimensionOrder="XYZCT" Type="uint16" SizeX="2000" SizeY="1000" SizeZ="1" '
    'SizeC="2" SizeT="1" {extra}><Channel ID="Channel:0:0"/><Channel ID="Channel:0:1"/>'
    "</Pixels></Image></OME>"
)

XML_CASES = {  # case: (attributes replaced or added, words the message must hold)
    "bits-huge": ('SignificantBits="100000"', "SignificantBits"),
    "bits-zero": ('SignificantBits="0"', "SignificantBits"),
    "bits-65": ('SignificantBits="65"', "SignificantBits"),
    "bits-negative": ('SignificantBits="-3"', "SignificantBits=-3"),
    "bits-above-type": ('SignificantBits="17"', "SignificantBits=17 must be from 1 to 16"),
    "size-x-zero": ('SizeX="0"', "SizeX"),
    "size-x-huge": ('SizeX="99999999999999"', "SizeX"),
    "size-y-text": ('SizeY="tall"', "SizeY"),
    "size-c-absurd": ('SizeC="100000000"', "SizeC"),
    "size-t-negative": ('SizeT="-1"', "SizeT"),
    "type-unknown": ('Type="complex"', "Type"),
}


def _xml(extra: str) -> str:
    name = extra.split("=")[0]
    base = XML
    for attribute in ("Type", "SizeX", "SizeY", "SizeZ", "SizeC", "SizeT"):
        if name == attribute:  # replace the attribute rather than repeat it
            start = base.index(f'{attribute}="')
            end = base.index('"', start + len(attribute) + 2) + 1
            return base[:start] + extra + base[end:].replace("{extra}", "")
    return base.replace("{extra}", extra)


@pytest.mark.parametrize("case", XML_CASES)
def test_malformed_ome_xml_is_one_line_naming_the_field(case) -> None:
    extra, words = XML_CASES[case]
    with pytest.raises(RequestError) as info:
        imgdata_from_ome_xml(_xml(extra), "1")
    assert words in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "bits"), [("uint16", 1), ("uint16", 12), ("uint16", 16), ("double", 64)]
)
def test_significant_bits_in_range_give_the_window(kind, bits) -> None:
    xml = _xml(f'SignificantBits="{bits}"').replace('Type="uint16"', f'Type="{kind}"')
    data = imgdata_from_ome_xml(xml, "1", style="omero")
    assert data["channels"][0]["window"]["end"] == float(2**bits - 1)
    assert np.isfinite(data["channels"][0]["window"]["end"])


# -- Minerva: OME-XML and the API's level count --------------------------------------------

MINERVA_CASES = {  # case: (OME-XML attributes, API answer, words the message must hold)
    "levels-absurd": ("", {"pyramid_levels": 10**9}, "pyramid_levels is 1000000000"),
    "levels-string": ("", {"pyramid_levels": "3"}, "pyramid_levels is '3'"),
    "levels-negative": ("", {"pyramid_levels": -2}, "pyramid_levels is -2"),
    "size-x-zero": ('SizeX="0"', {}, "SizeX=0"),
    "bits-huge": ('SignificantBits="100000"', {}, "SignificantBits=100000"),
}


@pytest.mark.parametrize("case", MINERVA_CASES)
def test_malformed_minerva_metadata_is_one_line_naming_the_field(case) -> None:
    from minerva_dask.sources.minerva import _info_from_ome

    extra, api, words = MINERVA_CASES[case]
    with pytest.raises(RemoteError) as info:
        _info_from_ome(_xml(extra).encode(), "1", api)
    assert words in str(info.value) and "Minerva image 1" in str(info.value)
    assert "\n" not in str(info.value)


def test_good_minerva_metadata_still_reads() -> None:
    from minerva_dask.sources.minerva import _info_from_ome

    info = _info_from_ome(_xml("").encode(), "1", {"pyramid_levels": 3})
    assert [(lv.width, lv.height) for lv in info.levels] == [(2000, 1000), (1000, 500), (500, 250)]
