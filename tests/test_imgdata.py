"""OME-XML to imgData on every shared OME-XML document, against values read by hand."""

from __future__ import annotations

import json

import pytest

import minerva_dask as md
from minerva_dask.cli import main
from minerva_dask.imgdata import imgdata_from_ome_xml, minerva_level_sizes
from minerva_dask.sources.omero import info_from_imgdata

# Read by hand from each document: image id, channels, type, (width, height, z, t),
# PhysicalSizeX in µm, channel labels (Name, else emission wavelength, else index),
# emission wavelengths, colours (OME signed RGBA int -> hex), window end (2**SignificantBits).
HAND_READ = {
    "aics_3d-cell-viewer.ome.xml": dict(
        image="0",
        c=9,
        type="uint16",
        size=(1024, 1024, 74, 1),
        px=0.065,
        labels=["DRAQ5", "EGFP", "Hoechst 33258", "TL Brightfield"],
        emission=[683, 509, 455, None],
        colors=["FF0016", "00FF5B", "005FFF"],
        end=65536,
    ),
    "aics_pipeline-4.ome.xml": dict(
        image="0",
        c=4,
        type="uint16",
        size=(900, 600, 65, 1),
        px=0.10833333333333332,
        labels=["Bright_2", "EGFP", "CMDRP", "H3342"],
        emission=[None, 509, 676, 455],
        colors=["FFFFFF", "00FF5B", "FF0015", "0076FF"],
        end=65536,
    ),
    "aics_s_3_t_1_c_3_z_5.ome.xml": dict(
        image="1",
        c=3,
        type="uint16",
        size=(475, 325, 5, 1),
        px=1.0833333333333333,
        labels=["EGFP", "TaRFP", "Bright"],
        emission=[509, 583, None],
        colors=["00FF5B", "FF4500", "FFFFFF"],
        end=65536,
    ),
    "tubhiswt.ome.xml": dict(
        image="0",
        c=2,
        type="uint8",
        size=(512, 512, 1, 20),
        px=None,
        labels=["0", "1"],
        emission=[None, None],
        colors=["FFFFFF", "FFFFFF"],
        end=256,
    ),
    "MMStack.ome.xml": dict(
        image="1",
        c=3,
        type="uint16",
        size=(256, 256, 5, 2),
        px=2.0,
        labels=["Cy5", "DAPI", "FITC"],
        emission=[None, None, None],
        colors=None,
        end=None,
    ),
    "from-cycif-reactive-core-48ch.ome.xml": dict(
        image="0",
        c=48,
        type="uint16",
        size=(100, 100, 1, 1),
        px=10000.0,
        labels=[str(i) for i in range(48)],
        emission=[None] * 48,
        colors=None,
        end=65536,
    ),
    "from-colon-2ch.ome.xml": dict(
        image="0",
        c=2,
        type="uint8",
        size=(2048, 2048, 1, 1),
        px=None,
        labels=["CHAN_0", "CHAN_1"],
        emission=[None, None],
        colors=None,
        end=256,
    ),
}


@pytest.mark.parametrize("name", sorted(HAND_READ))
def test_every_shared_document_converts_to_the_hand_read_values(shared_data, name) -> None:
    expected = HAND_READ[name]
    xml = (shared_data / "ome-xml" / name).read_bytes()
    data = imgdata_from_ome_xml(xml, expected["image"])
    width, height, z, t = expected["size"]
    assert data["size"] == {"width": width, "height": height, "z": z, "t": t, "c": expected["c"]}
    assert data["meta"]["pixelsType"] == expected["type"]
    assert data["pixel_size"]["x"] == expected["px"]
    labels = [c["label"] for c in data["channels"]]
    assert labels[: len(expected["labels"])] == expected["labels"]
    waves = [c["emissionWave"] for c in data["channels"]]
    assert waves[: len(expected["emission"])] == expected["emission"]
    if expected["colors"]:
        colors = [c["color"] for c in data["channels"]]
        assert colors[: len(expected["colors"])] == expected["colors"]
    if expected["end"]:
        assert data["channels"][0]["window"] == {
            "min": 0.0,
            "max": float(expected["end"]),
            "start": 0.0,
            "end": float(expected["end"]),
        }
    assert json.loads(json.dumps(data)) == data  # plain JSON


def test_pyramid_keys_follow_minervas_levels(shared_data) -> None:
    colon = imgdata_from_ome_xml((shared_data / "ome-xml/from-colon-2ch.ome.xml").read_bytes(), "0")
    assert colon["zoomLevelScaling"] == {"0": 1.0, "1": 0.5}
    assert colon["levels"] == 2
    assert colon["tile_size"] == {"width": 1024, "height": 1024}
    assert minerva_level_sizes(40000, 30000)[-2:] == [(1250, 938), (625, 469)]  # 7 levels


def test_split_channel_grids_2018_and_omero_styles(shared_data) -> None:
    xml = (shared_data / "ome-xml/aics_3d-cell-viewer.ome.xml").read_bytes()
    old = imgdata_from_ome_xml(xml, "0")["split_channel"]
    # 9 channels: 3 x 3; 10 with the merged panel: the most square pair is 5 x 2; border 2
    assert old["g"] == {"width": 3080, "height": 3080, "border": 2, "gridx": 3, "gridy": 3}
    assert old["c"] == {"width": 5132, "height": 2054, "border": 2, "gridx": 5, "gridy": 2}
    omero = imgdata_from_ome_xml(xml, "0", style="omero")["split_channel"]
    assert (omero["c"]["gridx"], omero["c"]["gridy"]) == (4, 3)  # sqrt(10): round 3, then 4
    colon = (shared_data / "ome-xml/from-colon-2ch.ome.xml").read_bytes()
    assert imgdata_from_ome_xml(colon, "0")["split_channel"]["c"]["gridx"] == 3  # 3 = 3 x 1
    assert imgdata_from_ome_xml(colon, "0", style="omero")["split_channel"]["c"]["gridx"] == 2


def test_omero_style_windows_and_small_images(shared_data) -> None:
    xml = (shared_data / "ome-xml/tubhiswt.ome.xml").read_bytes()
    data = imgdata_from_ome_xml(xml, "0", style="omero")
    assert data["channels"][0]["window"]["end"] == 255.0
    assert data["pixel_range"] == [0, 255]
    assert data["tiles"] is False and "zoomLevelScaling" not in data


@pytest.mark.parametrize("name", sorted(HAND_READ))
def test_our_omero_imgdata_model_accepts_the_output(shared_data, name) -> None:
    expected = HAND_READ[name]
    xml = (shared_data / "ome-xml" / name).read_bytes()
    for style in ("2018", "omero"):
        info = info_from_imgdata(imgdata_from_ome_xml(xml, expected["image"], style=style))
        assert (info.width, info.height, info.size_c) == (*expected["size"][:2], expected["c"])
        assert [c.name for c in info.channels][: len(expected["labels"])] == expected["labels"]


def test_missing_optional_attributes_are_tolerated() -> None:
    xml = (
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:ab">'
        '<Pixels DimensionOrder="XYCZT" Type="uint16" SizeX="3000" SizeY="20" SizeZ="1" '
        'SizeC="2" SizeT="1"><Channel ID="Channel:0:0"/><Channel ID="Channel:0:1" '
        'EmissionWavelength="520"/></Pixels></Image></OME>'
    )
    data = imgdata_from_ome_xml(xml, "Image:ab")
    assert [c["label"] for c in data["channels"]] == ["0", "520"]
    assert data["pixel_size"] == {"x": None, "y": None, "z": None}
    assert data["channels"][0]["window"]["end"] == 65536.0  # no SignificantBits: the type's
    assert data["levels"] == 3


def test_a_missing_image_lists_the_ids_there_are(shared_data) -> None:
    xml = (shared_data / "ome-xml/aics_s_3_t_1_c_3_z_5.ome.xml").read_bytes()
    with pytest.raises(md.RequestError, match=r"no image 'b9e3'; its image ids are: 0, 1, 2"):
        imgdata_from_ome_xml(xml, "b9e3")
    with pytest.raises(md.RequestError, match="not valid OME-XML"):
        imgdata_from_ome_xml(b"<OME", "0")


def test_cli_imgdata_writes_the_file(shared_data, tmp_path, capsys) -> None:
    source = shared_data / "ome-xml/from-colon-2ch.ome.xml"
    out = tmp_path / "imgdata.json"
    assert main(["imgdata", str(source), "--image-id", "0", "-o", str(out), "-q"]) == 0
    assert json.loads(out.read_text()) == imgdata_from_ome_xml(source.read_bytes(), "0")
    assert main(["imgdata", str(source), "--image-id", "0"]) == 0
    assert json.loads(capsys.readouterr().out)["size"]["c"] == 2
    assert main(["imgdata", str(tmp_path / "absent.xml"), "--image-id", "0"]) == 2
    assert main(["imgdata", str(source), "--image-id", "7"]) == 2
    assert "its image ids are: 0" in capsys.readouterr().err


def test_the_readme_imgdata_command_works_on_a_sample(shared_data, tmp_path, capsys) -> None:
    """The README's command and call, run as written on a real OME-XML document."""
    import re
    import shlex
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    command = re.search(r"^minerva-dask imgdata .*$", readme, re.MULTILINE).group(0)
    call = re.search(r"^md\.imgdata_from_ome_xml\(.*\)$", readme, re.MULTILINE).group(0)
    source = shared_data / "ome-xml/from-colon-2ch.ome.xml"
    argv = [str(source) if a == "metadata.xml" else a for a in shlex.split(command)[1:]]
    argv = [str(tmp_path / a) if a == "imgdata.json" else a for a in argv]
    assert main([*argv, "-q"]) == 0, capsys.readouterr().err
    written = json.loads((tmp_path / "imgdata.json").read_text())
    assert written["size"]["c"] == 2
    python = call.replace('open("metadata.xml", "rb")', f"open({str(source)!r}, 'rb')")
    assert eval(python, {"md": md}) == written  # the README's own line
    with pytest.raises(SystemExit):
        main(["imgdata", "--help"])
    assert "--image-id ID" in capsys.readouterr().out
