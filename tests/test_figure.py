"""``figure``: a whole OMERO.figure file rendered panel by panel, over files and OMERO.

Every expected panel is rendered here from a render_scaled_region URL whose region was
worked out by hand from OMERO.figure's export (``Figure_To_Pdf.py``, ``get_crop_region``:
viewport ``orig / (zoom / 100)``, narrowed to the panel's aspect, centred on the image's
centre less ``dx, dy``), not by the code under test.
"""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask._demo import synthetic_tissue
from minerva_dask.cli import main
from tests.servers.omero import OmeroServer, ServedImage

CREDS = {"username": "alice", "password": "wonderland"}
CH1 = [  # image 1 (tiny, 1100 x 700, levels 1, 1/2, 1/4...): DNA, Membrane, Keratin
    {"label": "DNA", "color": "0000FF", "window": {"start": 100, "end": 25000}, "active": True},
    {"label": "Mem", "color": "00FF00", "window": {"start": 0, "end": 9000}, "active": False},
    {"label": "Ker", "color": "FF0000", "window": {"start": 0, "end": 20000}, "active": True},
]
CH2 = [  # image 2 (z-stack, 320 x 240 x 3 z, one level)
    {"label": "A", "color": "FF0000", "window": {"start": 0, "end": 30000}, "active": True},
    {"label": "B", "color": "00FF00", "window": {"start": 0, "end": 40000}, "active": True},
]
INVERTED = copy.deepcopy(CH1)
INVERTED[2]["reverseIntensity"] = True
TINY = {"orig_width": 1100, "orig_height": 700, "name": "tiny.ome.tif", "imageId": 1}
ZSTACK = {"orig_width": 320, "orig_height": 240, "name": "zstack.ome.tif", "imageId": 2}


def v6_figure() -> dict:
    """Four panels at 72 dpi: A zoomed 200% and offset, hidden channel, scalebar, label;
    B the same viewport turned 90 degrees; C theZ=2 of a flat image; D the whole image at
    a size no level has (resampled), one channel inverted."""
    panel_a = {
        **TINY, "x": 20, "y": 40, "width": 275, "height": 175, "zoom": 200, "dx": 100,
        "dy": -50, "theZ": 0, "theT": 0, "channels": CH1, "min_export_dpi": 72,
        "pixel_size_x": 0.65, "pixel_size_x_unit": "MICROMETER",
        "scalebar": {"show": True, "length": 65, "units": "MICROMETER",
                     "position": "bottomright", "color": "FFFFFF"},
        "labels": [{"text": "[channels]", "size": 12, "position": "top", "color": "000000"}],
    }  # fmt: skip
    panel_b = {
        **TINY,
        "x": 320,
        "y": 40,
        "width": 275,
        "height": 175,
        "zoom": 200,
        "dx": 0,
        "dy": 0,
        "rotation": 90,
        "channels": CH1,
        "min_export_dpi": 72,
    }
    panel_c = {**ZSTACK, "x": 20, "y": 260, "width": 160, "height": 120, "theZ": 2,
               "zoom": 100, "dx": 0, "dy": 0, "channels": CH2, "min_export_dpi": 72,
               "labels": [{"text": "[time.index]", "size": 10, "position": "bottom",
                           "color": "000000"}]}  # fmt: skip
    panel_d = {
        **TINY,
        "x": 320,
        "y": 260,
        "width": 300,
        "height": 191,
        "zoom": 100,
        "dx": 0,
        "dy": 0,
        "channels": INVERTED,
        "min_export_dpi": 72,
    }
    return {"version": 6, "paper_width": 700, "paper_height": 500, "page_color": "FFFFFF",
            "panels": [panel_a, panel_b, panel_c, panel_d]}  # fmt: skip


def v1_figure() -> dict:
    """The same figure as version 1 saved it: export_dpi, no scalebar units, no pixel
    unit, a time label as {'time': ...}."""
    figure = v6_figure()
    figure["version"] = 1
    for panel in figure["panels"]:
        panel["export_dpi"] = panel.pop("min_export_dpi")
        panel.pop("pixel_size_x_unit", None)
        if "scalebar" in panel:
            del panel["scalebar"]["units"]
    figure["panels"][2]["labels"] = [
        {"time": "index", "size": 10, "position": "bottom", "color": "000000"}
    ]
    return figure


# (image id, URL, turns clockwise, resample to) worked out by hand, panel by panel
EXPECTED = [
    # A: 1100/2 x 700/2 viewport at ((1100-550)/2 - 100, (700-350)/2 + 50); 275 pt at 72 dpi
    # is 275 px, exactly level 1 (1/2)
    ("1", "/1/0/0/?c=1|100:25000$0000FF,-2|0:9000$00FF00,3|0:20000$FF0000"
          "&region=175,225,550,350&max_size=275", 0, None),
    # B: the 550 x 350 viewport centred at (550, 350), turned: 350 x 550 about that centre
    ("1", "/1/0/0/?c=1|100:25000$0000FF,-2|0:9000$00FF00,3|0:20000$FF0000"
          "&region=375,75,350,550&max_size=275", 1, None),
    # C: the whole z-stack plane z=2 at 160 x 120: level 0 reduced 1/2
    ("2", "/2/2/0/?c=1|0:30000$FF0000,2|0:40000$00FF00&region=0,0,320,240&max_size=160",
     0, None),
    # D: 300 x 191 px of the whole image (aspects within 0.01: no narrowing); no level has
    # that size: the 550 x 350 of level 1, resampled bicubic; channel 3 inverted
    ("1", "/1/0/0/?c=1|100:25000$0000FF,-2|0:9000$00FF00,3|0:20000$FF0000"
          '&maps=[{"inverted":{"enabled":false}},{"inverted":{"enabled":false}},'
          '{"inverted":{"enabled":true}}]&region=0,0,1100,700&max_size=550', 0, (300, 191)),
]  # fmt: skip
PLACES = [(20, 40, 275, 175), (320, 40, 275, 175), (20, 260, 160, 120), (320, 260, 300, 191)]


@pytest.fixture(scope="module")
def zstack(tmp_path_factory) -> tuple[str, np.ndarray]:
    import tifffile

    data = np.stack([synthetic_tissue(320, 240, channels=2, seed=z) for z in range(3)])
    path = tmp_path_factory.mktemp("zstack") / "zstack.ome.tif"
    tifffile.imwrite(
        path, data, ome=True, tile=(128, 128),
        metadata={"axes": "ZCYX", "PhysicalSizeX": 0.65, "PhysicalSizeY": 0.65},
    )  # fmt: skip
    return str(path), data


@pytest.fixture(scope="module")
def omero(tiny_ome_tiff, zstack):
    z_levels = [np.transpose(zstack[1], (1, 0, 2, 3))[np.newaxis]]  # (t, c, z, y, x)
    images = {
        1: ServedImage.from_tiff(str(tiny_ome_tiff)),
        2: ServedImage.from_levels("zstack.ome.tif", z_levels),
    }
    with OmeroServer(images, png=True) as server:
        yield server


def expected_panels(sources: dict[str, object]) -> list[np.ndarray]:
    """Each panel rendered here from its URL, turned and resampled as the export does."""
    out = []
    for image_id, url, turns, resample in EXPECTED:
        rgb = md.render(sources[image_id], md.parse_request(url)).compute()
        if resample is not None:
            rgb = np.asarray(Image.fromarray(rgb).resize(resample, Image.Resampling.BICUBIC))
        out.append(np.rot90(rgb, k=-turns))
    return out


def read_png(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def check_figure(result: md.figure.FigureResult, expected: list[np.ndarray]) -> None:
    assert [p.name for p in result.panels] == [
        "01-tiny.png", "02-tiny.png", "03-zstack.png", "04-tiny.png"
    ]  # fmt: skip
    for number, (path, want) in enumerate(zip(result.panels, expected, strict=True), 1):
        got = read_png(path)
        assert got.shape == want.shape, f"panel {number}"
        assert np.array_equal(got, want), f"panel {number} differs from its request's render"
    page = result.page()
    assert page.shape == (500, 700, 3)  # 72 dpi: one pixel a point
    for number, ((x, y, w, h), want) in enumerate(zip(PLACES, expected, strict=True), 1):
        placed = page[y : y + h, x : x + w].copy()
        if number == 1:  # the scalebar: 65 um / 0.65 um = 100 px = 50 pt, 13.75 pt in
            bar = placed[199 - y : 202 - y, 231 - x : 281 - x]
            assert (bar == 255).all(), "scalebar not white where OMERO.figure draws it"
            placed[199 - y : 202 - y, 231 - x : 281 - x] = want[
                199 - y : 202 - y, 231 - x : 281 - x
            ]
        assert np.array_equal(placed, want), f"panel {number} is not at its place on the page"
    label = page[23:40, 20:295]  # 'DNA Ker' (shown channels), 12 pt high, 5 pt above A
    assert (label.max(axis=2) < 128).sum() > 20, "no label above panel 1"
    below = page[385:400, 20:180]  # '1' (the time index), 5 pt below C
    assert (below.max(axis=2) < 128).sum() > 3, "no label below panel 3"


@pytest.mark.slow
def test_figure_over_local_files_renders_each_panel_as_its_request(
    tmp_path, tiny_ome_tiff, zstack
) -> None:
    images = {1: tiny_ome_tiff, "2": zstack[0]}
    result = md.render_figure(v6_figure(), tmp_path / "out", images=images)
    sources = {"1": md.open_image(tiny_ome_tiff), "2": md.open_image(zstack[0])}
    check_figure(result, expected_panels(sources))
    manifest = json.loads(result.manifest.read_text())
    assert [p["request"].split("&region=")[1].split("&")[0] for p in manifest["panels"]] == [
        "175,225,550,350", "375,75,350,550", "0,0,320,240", "0,0,1100,700"
    ]  # fmt: skip
    assert [p["resampled"] for p in manifest["panels"]] == [None, None, None, "bicubic"]
    assert manifest["panels"][0]["source"] == str(tiny_ome_tiff)
    assert manifest["pages"] == [{"file": "page.png", "size": [700, 500]}]


@pytest.mark.slow
def test_figure_over_omero_renders_each_panel_as_its_request(tmp_path, omero) -> None:
    result = md.render_figure(v6_figure(), tmp_path / "out", omero=omero.url, omero_options=CREDS)
    sources = {i: md.open_omero(omero.url, i, **CREDS) for i in ("1", "2")}
    check_figure(result, expected_panels(sources))
    text = result.manifest.read_text()
    assert "wonderland" not in text
    assert json.loads(text)["panels"][2]["source"] == f"omero {omero.url} image 2"


def test_version_1_reads_as_version_6(tmp_path) -> None:
    old, new = md.read_figure(v1_figure()), md.read_figure(v6_figure())
    assert (old.version, new.version) == (1, 6)
    assert old.panels == new.panels
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(v1_figure()))
    assert md.read_figure(path).panels[2].labels[0].text == "[time.index]"


def test_cli_renders_a_version_1_file_like_version_6(tmp_path, tiny_ome_tiff, zstack) -> None:
    paths = {}
    for name, figure in (("v1", v1_figure()), ("v6", v6_figure())):
        (tmp_path / f"{name}.json").write_text(json.dumps(figure))
        argv = ["figure", str(tmp_path / f"{name}.json"), "-o", str(tmp_path / name), "-q",
                "--image", f"1={tiny_ome_tiff}", "--image", f"2={zstack[0]}"]  # fmt: skip
        assert main(argv) == 0
        paths[name] = tmp_path / name
    for name in ("01-tiny.png", "02-tiny.png", "03-zstack.png", "04-tiny.png", "page.png"):
        assert np.array_equal(read_png(paths["v1"] / name), read_png(paths["v6"] / name)), name


def test_dpi_sets_each_panels_pixel_size(tmp_path, tiny_ome_tiff, zstack) -> None:
    src = md.open_image(tiny_ome_tiff)  # given open: still open after
    images = {1: src, 2: zstack[0]}
    result = md.render_figure(v6_figure(), tmp_path / "o", images=images, dpi=144)
    assert result.sizes == ((550, 350), (550, 350), (320, 240), (600, 382))
    assert md.render(src, md.parse_request(EXPECTED[0][1])).compute().shape == (175, 275, 3)
    assert result.page_size == (1400, 1000)
    assert [read_png(p).shape[1::-1] for p in result.panels] == list(result.sizes)


def test_a_channel_the_image_lacks_fails_naming_the_panel_and_writes_nothing(
    tmp_path, tiny_ome_tiff, zstack
) -> None:
    figure = v6_figure()
    figure["panels"][2]["channels"] = [*CH2, CH2[0]]  # image 2 has 2 channels
    with pytest.raises(md.RequestError, match=r"^panel 3 \(image 2, 'zstack.ome.tif'\): channel 3"):
        md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff, 2: zstack[0]})
    assert list(tmp_path.iterdir()) == []


def test_a_missing_image_file_is_one_cli_line_naming_the_panel(
    tmp_path, tiny_ome_tiff, capsys
) -> None:
    path = tmp_path / "fig.json"
    path.write_text(json.dumps(v6_figure()))
    argv = ["figure", str(path), "-o", str(tmp_path / "out"), "--image", f"1={tiny_ome_tiff}",
            "--image", f"2={tmp_path / 'gone.ome.tif'}"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("minerva-dask: error: panel 3 (image 2, 'zstack.ome.tif'): ")
    assert not (tmp_path / "out").exists()


def test_an_image_id_without_a_source_is_refused_naming_the_panel(tmp_path, tiny_ome_tiff):
    with pytest.raises(md.RequestError, match=r"panel 3 .*--image 2=PATH_OR_URL"):
        md.render_figure(v6_figure(), tmp_path / "out", images={1: tiny_ome_tiff})


def test_other_angles_turn_the_bounding_region_bicubic_about_the_centre(
    tmp_path, tiny_ome_tiff, zstack
) -> None:
    figure = v6_figure()
    figure["panels"][1]["rotation"] = 30  # B: the 550 x 350 crop centred at (550, 350)
    images = {1: tiny_ome_tiff, 2: zstack[0]}
    result = md.render_figure(figure, tmp_path / "out", images=images)
    # the turned crop's bounding box at 1/2 (275 px for 550): 325.7 x 289.1 px, plus 2 px
    # a side: margins 28 and 60 px around 275 x 175, so 331 x 295 px = 662 x 590 image px
    url = (
        "/1/0/0/?c=1|100:25000$0000FF,-2|0:9000$00FF00,3|0:20000$FF0000"
        "&region=219,55,662,590&max_size=331"
    )
    rgb = md.render(md.open_image(tiny_ome_tiff), md.parse_request(url)).compute()
    assert rgb.shape == (295, 331, 3)
    turned = Image.fromarray(rgb).rotate(-30, resample=Image.Resampling.BICUBIC)
    want = np.asarray(turned)[60 : 60 + 175, 28 : 28 + 275]
    assert np.array_equal(read_png(result.panels[1]), want)
    manifest = json.loads(result.manifest.read_text())["panels"][1]
    assert (manifest["rotation"], manifest["turned"]) == (30, "bicubic")


@pytest.mark.parametrize("degrees", [1, 45, 89, 179, 271.5, -30])
def test_any_angle_gives_the_panel_its_size_and_turns_the_same_way_as_quarter_turns(
    tmp_path, tiny_ome_tiff, degrees
) -> None:
    figure = v6_figure()
    figure["panels"] = [figure["panels"][1]]  # 275 x 175 pt, a wide crop
    figure["panels"][0]["zoom"] = 100
    images = {1: tiny_ome_tiff}
    got = {}
    for angle in (degrees, round(degrees / 90) * 90, round(degrees / 90) * 90 + 180):
        figure["panels"][0]["rotation"] = angle
        result = md.render_figure(figure, tmp_path / f"{angle}", images=images)
        got[angle] = read_png(result.panels[0]).astype(int)
        assert got[angle].shape == (175, 275, 3)
    near, far = (np.abs(got[degrees] - got[a]).mean() for a in list(got)[1:])
    assert near < far  # the nearest quarter turn looks alike, the opposite one does not


def test_an_existing_folder_is_replaced_whole_only_when_asked(
    tmp_path, tiny_ome_tiff, zstack
) -> None:
    out = tmp_path / "out"
    out.mkdir()  # an earlier figure output: its manifest says so
    (out / "old.txt").write_text("keep")
    (out / "manifest.json").write_text("{}")
    images = {1: tiny_ome_tiff, 2: zstack[0]}
    with pytest.raises(md.OutputError, match="exists; pass overwrite=True"):
        md.render_figure(v6_figure(), out, images=images)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old.txt"]
    md.render_figure(v6_figure(), out, images=images, overwrite=True, page_format="tiff")
    assert sorted(p.name for p in out.iterdir()) == [
        "01-tiny.png", "02-tiny.png", "03-zstack.png", "04-tiny.png", "manifest.json", "page.tif"
    ]  # fmt: skip
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # nothing left beside it


def test_a_figure_shows_its_page_in_a_notebook(tmp_path, tiny_ome_tiff, zstack) -> None:
    result = md.render_figure(v6_figure(), tmp_path / "o", images={1: tiny_ome_tiff, 2: zstack[0]})
    with Image.open(io.BytesIO(result._repr_png_())) as shown:
        assert shown.size == (700, 500)
        assert np.array_equal(np.asarray(shown.convert("RGB")), result.page())


def test_without_pillow_the_figure_says_which_extra_installs_it(tmp_path, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "PIL", None)  # import PIL now raises ImportError
    with pytest.raises(md.MissingDependencyError, match=r"pip install 'minerva-dask\[figure\]'"):
        md.render_figure(v6_figure(), tmp_path / "out", images={})
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_cli_over_omero_keeps_the_password_out_of_outputs_and_messages(
    tmp_path, omero, capsys
) -> None:
    path = tmp_path / "fig.json"
    path.write_text(json.dumps(v6_figure()))
    server = omero.url.replace("://", "://alice:wonderland@")
    argv = ["figure", str(path), "--omero", server, "-o", str(tmp_path / "out"), "-v"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "Wrote" in err
    assert "wonderland" not in (tmp_path / "out" / "manifest.json").read_text()
    assert "wonderland" not in err
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["panels"][0]["source"] == f"omero {omero.url} image 1"


def test_label_properties_are_filled_in_and_names_keep_their_underscores() -> None:
    from minerva_dask.figure._file import FigureLabel
    from minerva_dask.figure._layout import crop_region
    from minerva_dask.figure._page import label_text

    panel = md.read_figure(v6_figure()).panels[0]
    text = "**[image.name]** [channels] x=[x] w=[w.pixel] [zoom] z[z] t[t] [time.secs] CD_8"
    got = label_text(FigureLabel(text, 12, "top", "000000"), panel, crop_region(panel))
    assert got == "tiny.ome.tif DNA Ker x=175 w=550 200 % z1 t1 [time.secs] CD_8"


def test_a_font_without_micro_writes_um_rather_than_a_box() -> None:
    from PIL import ImageFont

    from minerva_dask.figure._page import _drawable

    assert _drawable("500 µm", ImageFont.load_default(size=20)) == "500 um"  # Pillow's Aileron


def test_an_image_of_another_size_than_the_figure_says_is_refused(tmp_path, tiny_ome_tiff):
    figure = v6_figure()  # image 2 is 320 x 240; tiny is 1100 x 700
    with pytest.raises(md.RequestError, match=r"^panel 3 .*320 x 240 px, the image given is 1100"):
        md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff, 2: tiny_ome_tiff})


def test_a_dpi_beyond_the_pixel_budget_is_refused_before_any_read(
    tmp_path, tiny_ome_tiff, zstack
) -> None:
    images = {1: tiny_ome_tiff, 2: zstack[0]}
    with pytest.raises(md.RequestError, match=r"^panel 1 .*over the budget of 1,000,000 pixels"):
        md.render_figure(v6_figure(), tmp_path / "out", images=images, max_pixels=10**6, dpi=600)
    with pytest.raises(md.RequestError, match=r"^the page is 1,400 x 1,000 px"):
        md.render_figure(v6_figure(), tmp_path / "out", images=images, max_pixels=10**6, dpi=144)


def test_an_output_folder_holding_the_figure_file_is_refused(tmp_path, tiny_ome_tiff, zstack):
    path = tmp_path / "fig.json"
    path.write_text(json.dumps(v6_figure()))
    images = {1: tiny_ome_tiff, 2: zstack[0]}
    with pytest.raises(md.OutputError, match="contains the input"):
        md.render_figure(path, tmp_path, images=images, overwrite=True)
    assert path.exists()


def test_a_figure_of_two_pages_writes_each_with_its_panels(tmp_path, tiny_ome_tiff) -> None:
    figure = v6_figure()
    figure.update(page_count=2, page_col_count=2, paper_spacing=50)
    second = copy.deepcopy(figure["panels"][0])
    second.update(x=700 + 50 + 100, y=60, labels=[], scalebar={"show": False})
    figure["panels"] = [figure["panels"][1], second]
    result = md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff})
    assert [p.name for p in result.pages] == ["page-1.png", "page-2.png"]
    first_page, second_page = result.page(0), result.page(1)
    panel_b, panel_a = (read_png(p) for p in result.panels)
    assert np.array_equal(first_page[40:215, 320:595], panel_b)
    assert np.array_equal(second_page[60:235, 100:375], panel_a)
    assert (second_page[:, 400:] == 255).all()  # panel B is on page 1 only


def test_shapes_are_drawn_on_the_page_where_the_export_maps_them(tmp_path, tiny_ome_tiff):
    figure = v6_figure()
    panel_a, panel_b = (copy.deepcopy(p) for p in figure["panels"][:2])
    panel_a.update(labels=[], scalebar={"show": False})
    panel_a["border"] = {"showBorder": True, "strokeWidth": 3, "color": "00FFFF"}
    # A: crop (175, 225, 550, 350) at 0.5 pt per pixel: (275, 325) is 50 pt, 50 pt in
    panel_a["shapes"] = [{"type": "Rectangle", "x": 275, "y": 325, "width": 200, "height": 100,
                          "strokeWidth": 2, "strokeColor": "#FFFF00"}]  # fmt: skip
    # B: turned 90 about (550, 350): a horizontal line through it becomes vertical
    panel_b["shapes"] = [{"type": "Line", "x1": 450, "y1": 350, "x2": 650, "y2": 350,
                          "strokeWidth": 2, "strokeColor": "#FFFF00"},
                         {"type": "Text", "x": 1, "y": 1, "text": "hi"}]  # fmt: skip
    figure["panels"] = [panel_a, panel_b]
    result = md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff})
    page = result.page().astype(int)
    yellow = (page[..., 0] > 200) & (page[..., 1] > 200) & (page[..., 2] < 80)
    assert yellow[89:92, 75:165].any(axis=0).all()  # top edge at y = 40 + 50
    assert yellow[95:135, 69:72].any(axis=1).all()  # left edge at x = 20 + 50
    assert not yellow[95:135, 80:160].any()  # inside: the panel
    assert yellow[82:173, 456:459].any(axis=1).all()  # B's centre x 320 + 137.5
    assert not yellow[40:215, 330:440].any()
    alone = read_png(result.panels[0]).astype(int)  # the panel's PNG is the render alone
    assert not ((alone[..., 0] > 200) & (alone[..., 1] > 200) & (alone[..., 2] < 80))[49:52].all()
    manifest = json.loads(result.manifest.read_text())["panels"]
    assert manifest[1]["not_drawn"] == ["1 shape(s) (text and unknown shapes are not drawn)"]
    assert not yellow[:, :20].any() and not yellow[:40].any()  # clipped to the panels
    cyan = (page[..., 0] < 80) & (page[..., 1] > 200) & (page[..., 2] > 200)
    assert cyan[37:40, 17:298].all() and cyan[215:218, 17:298].all()  # 3 pt border, outside
    assert cyan[40:215, 17:20].all() and cyan[40:215, 295:298].all()
    assert not cyan[:, 300:].any()


def test_older_versions_name_things_as_they_did() -> None:
    def panel(**extra) -> dict:
        return {**TINY, "x": 0, "y": 0, "width": 275, "height": 175, "channels": CH1, **extra}

    old = {"version": 1, "panels": [panel(export_dpi=150, shapes=[
        {"type": "Ellipse", "cx": 10, "cy": 20, "rx": 5, "ry": 3, "lineWidth": 4,
         "strokeColor": "#FF0000"}])]}  # fmt: skip
    new = {"version": 6, "panels": [panel(min_export_dpi=150, shapes=[
        {"type": "Ellipse", "x": 10, "y": 20, "radiusX": 5, "radiusY": 3, "strokeWidth": 4,
         "strokeColor": "#FF0000"}])]}  # fmt: skip
    before, after = md.read_figure(old).panels[0], md.read_figure(new).panels[0]
    assert before.min_export_dpi == after.min_export_dpi == 150
    assert before.shapes[0].points == after.shapes[0].points
    assert before.shapes[0].stroke_width == after.shapes[0].stroke_width == 4
    assert (before.shapes[0].image_units, after.shapes[0].image_units) == (True, False)
    unversioned = md.read_figure({"panels": [panel(pixel_size=0.5)]})  # before version 1
    assert (unversioned.version, unversioned.panels[0].pixel_size_x) == (0, 0.5)


@pytest.mark.parametrize("count", [0.5, -1, "x", [2], 10**9])
def test_a_page_count_that_is_not_a_small_whole_number_is_refused(count) -> None:
    figure = v6_figure()
    figure["page_count"] = count
    with pytest.raises(md.RequestError, match=r"^figure: page_count .* whole number"):
        md.read_figure(figure)
    figure.update(page_count=1, page_col_count=count)
    with pytest.raises(md.RequestError, match=r"^figure: page_col_count .* whole number"):
        md.read_figure(figure)


@pytest.mark.parametrize(
    "bar",
    [
        {"length": 1e-6},  # under a pixel
        {"length": 1e30},  # far beyond the page
        {"length": 10, "height": 1e30},
        {"length": 10, "units": "PARSEC"},  # unknown unit: the pixel unit, 1/65 of a pixel
    ],
)
def test_a_scalebar_too_short_or_too_long_to_draw_is_cut_to_the_page(
    tmp_path, tiny_ome_tiff, bar
) -> None:
    figure = v6_figure()
    figure["panels"] = figure["panels"][:1]
    figure["panels"][0]["scalebar"].update(bar)
    result = md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff})
    assert result.page().shape == (500, 700, 3)


@pytest.mark.parametrize("where", ["panel", "manifest"])
def test_a_full_disk_names_the_output_folder_and_keeps_the_old_one(
    tmp_path, tiny_ome_tiff, monkeypatch, where
) -> None:
    import errno

    from minerva_dask.figure import _output

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    if where == "panel":
        from PIL import Image as PILImage

        monkeypatch.setattr(PILImage.Image, "save", full)
    else:
        monkeypatch.setattr(_output.json, "dump", full)
    figure = v6_figure()
    figure["panels"] = figure["panels"][:1]
    out = tmp_path / "out"
    out.mkdir()  # an earlier figure output
    (out / "old.txt").write_text("keep")
    (out / "manifest.json").write_text("{}")
    with pytest.raises(md.OutputError, match=f"^cannot write {out}: no space left on device$"):
        md.render_figure(figure, out, images={1: tiny_ome_tiff}, overwrite=True)
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "old.txt"]


@pytest.mark.parametrize("dpi", [0, -5, float("nan"), 1e9])
def test_a_dpi_out_of_range_says_the_range(tmp_path, dpi) -> None:
    with pytest.raises(md.RequestError, match=r"^dpi must be a number > 0 and < 100000, got"):
        md.render_figure(v6_figure(), tmp_path / "out", images={}, dpi=dpi)


def test_a_figure_file_with_a_bom_reads_and_odd_files_are_one_clear_error(tmp_path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + json.dumps(v6_figure()).encode())
    assert len(md.read_figure(bom).panels) == 4
    deep = tmp_path / "deep.json"
    deep.write_text('{"panels": ' + "[" * 100_000 + "]" * 100_000 + "}")
    with pytest.raises(md.RequestError, match="nested too deep"):
        md.read_figure(deep)
    with pytest.raises(md.RequestError, match="is not a file"):
        md.read_figure(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"strokeWidth": "x"}, r"Rectangle shape: a value it cannot be drawn with \(could not"),
        ({"strokeWidth": float("nan")}, r"strokeWidth nan is not a finite number >= 0"),
        ({"strokeWidth": float("inf")}, r"strokeWidth inf is not a finite number >= 0"),
        ({"fillOpacity": "x"}, r"a value it cannot be drawn with"),
        ({"strokeColor": "red"}, r"Rectangle shape: shape colour 'red' is not"),
        ({"type": "Polygon", "points": "1 2 3"}, r"Polygon shape: a value it cannot be drawn"),
    ],
)
def test_a_shape_with_unusable_values_is_one_error_naming_the_panel(change, message) -> None:
    figure = v6_figure()
    shape = {"type": "Rectangle", "x": 300, "y": 300, "width": 100, "height": 50}
    figure["panels"][0]["shapes"] = [{**shape, **change}]
    with pytest.raises(md.RequestError, match=r"^panel 1 .*" + message):
        md.read_figure(figure)


def test_a_stroke_wider_than_the_page_is_drawn_not_an_overflow(tmp_path, tiny_ome_tiff) -> None:
    figure = v6_figure()
    figure["panels"] = figure["panels"][:1]
    figure["panels"][0].update(labels=[], scalebar={"show": False})
    figure["panels"][0]["shapes"] = [
        {"type": "Rectangle", "x": 300, "y": 300, "width": 100, "height": 50,
         "strokeWidth": 1e12, "strokeColor": "#FFFF00", "fillOpacity": 7}
    ]  # fmt: skip
    page = md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff}).page()
    yellow = (page[40:215, 20:295] == (255, 255, 0)).all(axis=-1)
    assert yellow.mean() > 0.5  # the panel, mostly under the stroke


@pytest.mark.parametrize("change", [{"zoom": 1e-300}, {"dx": 1e20}])
def test_a_zoom_or_offset_beyond_any_image_is_refused_not_a_hang(tmp_path, tiny_ome_tiff, change):
    figure = v6_figure()
    figure["panels"] = figure["panels"][:1]
    figure["panels"][0].update(change)
    with pytest.raises(md.RequestError, match=r"^panel 1 .*beyond 1e\+15 pixels"):
        md.render_figure(figure, tmp_path / "out", images={1: tiny_ome_tiff})


def test_a_window_that_is_not_finite_says_finite_only() -> None:
    figure = v6_figure()
    figure["panels"][0]["channels"] = [{**CH1[0], "window": {"start": -5, "end": 1e400}}]
    with pytest.raises(md.RequestError, match=r"window end inf must be a finite number$"):
        md.read_figure(figure)


def test_a_linked_output_folder_is_written_through_and_the_link_kept(
    tmp_path, tiny_ome_tiff
) -> None:
    figure = v6_figure()
    figure["panels"] = figure["panels"][:1]
    real, link = tmp_path / "real", tmp_path / "link"
    md.render_figure(figure, real, images={1: tiny_ome_tiff})
    link.symlink_to(real)
    md.render_figure(figure, link, images={1: tiny_ome_tiff}, overwrite=True)
    assert link.is_symlink() and (real / "manifest.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["link", "real"]  # nothing beside
