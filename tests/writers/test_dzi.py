"""Deep Zoom output: Deep Zoom's rule, the pixels of the PNG of the same request, the
structure pyvips dzsave writes, atomic and resumable writes, channel groups."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.cli import main
from minerva_dask.exports import to_dzi
from tests.reference import expected_levels

# odd sizes, a region reaching outside the image, more than one block of 1016 across
DEMO = (
    "/0/0/0/?c=1|600:24000$0000FF,2|800:30000$00FF00,3|500:20000$FF0000"
    "&region=-37,-11,2501,1333&max_size=1251"
)
NS = "{http://schemas.microsoft.com/deepzoom/2008}"


def read_dzi(path: Path) -> dict[str, int | str]:
    root = ET.parse(path).getroot()
    size = root.find(f"{NS}Size")
    return {
        "Format": root.get("Format"),
        "Overlap": int(root.get("Overlap")),
        "TileSize": int(root.get("TileSize")),
        "Width": int(size.get("Width")),
        "Height": int(size.get("Height")),
    }


def decode(path: Path) -> np.ndarray:
    data = path.read_bytes()
    return imagecodecs.png_decode(data) if path.suffix == ".png" else imagecodecs.jpeg8_decode(data)


def tiles(files: Path) -> dict[str, tuple[int, int]]:
    """``{"LEVEL/COL_ROW.ext": (height, width)}`` of every tile under ``NAME_files``."""
    return {
        str(p.relative_to(files)): decode(p).shape[:2]
        for p in files.rglob("*")
        if p.suffix in (".png", ".jpeg")
    }


def stitch(files: Path, level: int, shape: tuple[int, int], size: int, overlap: int, ext: str):
    """The level drawn from its tiles, each tile's overlap checked against its neighbours'."""
    out = np.zeros((*shape, 3), np.uint8)
    for row in range(math.ceil(shape[0] / size)):
        for col in range(math.ceil(shape[1] / size)):
            tile = decode(files / str(level) / f"{col}_{row}.{ext}")
            y0, x0 = max(0, row * size - overlap), max(0, col * size - overlap)
            y1 = min(shape[0], (row + 1) * size + overlap)
            x1 = min(shape[1], (col + 1) * size + overlap)
            assert tile.shape == (y1 - y0, x1 - x0, 3), (level, col, row)
            out[y0:y1, x0:x1] = tile
    return out


@pytest.fixture(scope="module")
def demo_png(demo_path, tmp_path_factory) -> np.ndarray:
    path = tmp_path_factory.mktemp("png") / "demo.png"
    md.crop(DEMO, path, image=demo_path)
    return path


def test_dzi_of_the_demo_follows_deep_zooms_rule_and_equals_the_png(demo_path, demo_png, tmp_path):
    result = md.crop(DEMO, tmp_path / "slide.dzi", image=demo_path, tile_format="png")
    png = imagecodecs.png_decode(demo_png.read_bytes())
    height, width = png.shape[:2]
    info = read_dzi(tmp_path / "slide.dzi")
    assert info == {
        "Format": "png",
        "Overlap": 1,
        "TileSize": 254,
        "Width": width,
        "Height": height,
    }
    top = math.ceil(math.log2(max(width, height)))  # levels down to 1 x 1
    files = tmp_path / "slide_files"
    assert sorted(int(p.name) for p in files.iterdir()) == list(range(top + 1))
    assert result.levels == top + 1 and result.shape == (height, width)
    levels = expected_levels(png, top + 1)[::-1]  # DZ level 0 is 1 x 1
    found = tiles(files)
    count = 0
    for level in range(top + 1):
        shape = (math.ceil(height / 2 ** (top - level)), math.ceil(width / 2 ** (top - level)))
        assert levels[level].shape[:2] == shape
        count += math.ceil(shape[0] / 254) * math.ceil(shape[1] / 254)
        # every tile exists with its size; full resolution equals the PNG, lower levels
        # its 2 x 2 means (exactly: PNG tiles)
        np.testing.assert_array_equal(stitch(files, level, shape, 254, 1, "png"), levels[level])
    assert len(found) == count
    assert levels[0].shape == (1, 1, 3)
    assert not list(tmp_path.glob(".*"))  # no partial folder left


def test_jpeg_tiles_equal_the_png_within_jpeg_tolerance(demo_path, demo_png, tmp_path) -> None:
    md.crop(DEMO, tmp_path / "slide.dzi", image=demo_path)  # JPEG, quality 75 by default
    png = imagecodecs.png_decode(demo_png.read_bytes())
    info = read_dzi(tmp_path / "slide.dzi")
    assert info["Format"] == "jpeg"
    top = math.ceil(math.log2(max(png.shape[:2])))
    full = stitch(tmp_path / "slide_files", top, png.shape[:2], 254, 1, "jpeg")
    mse = np.mean((full.astype(np.float64) - png) ** 2)
    # PSNR in dB: JPEG at quality 75 of this cell-sized texture (26.6 dB; noise would be ~10)
    assert 10 * np.log10(255**2 / mse) > 24
    # each tile is the JPEG of exactly the PNG's pixels it covers
    tile = decode(tmp_path / "slide_files" / str(top) / "1_1.jpeg")
    expected = imagecodecs.jpeg8_decode(imagecodecs.jpeg8_encode(png[253:509, 253:509], level=75))
    np.testing.assert_array_equal(tile, expected)


def test_the_structure_is_what_pyvips_dzsave_writes_from_the_png(demo_png, tmp_path) -> None:
    pyvips = pytest.importorskip("pyvips")
    png = imagecodecs.png_decode(demo_png.read_bytes())
    for fmt, suffix in (("jpeg", ".jpeg"), ("png", ".png")):
        ours, theirs = tmp_path / f"ours-{fmt}", tmp_path / f"vips-{fmt}"
        ours.mkdir(), theirs.mkdir()
        to_dzi(png, ours / "s.dzi", tile_format=fmt)
        pyvips.Image.new_from_file(str(demo_png)).dzsave(str(theirs / "s"), suffix=suffix)
        assert read_dzi(ours / "s.dzi") == read_dzi(theirs / "s.dzi")
        assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in theirs.iterdir())
        assert tiles(ours / "s_files") == tiles(theirs / "s_files")  # names and sizes
        if fmt == "png":  # and, lossless, the same pixels at every level (2 x 2 means alike)
            for name in tiles(ours / "s_files"):
                a, b = decode(ours / "s_files" / name), decode(theirs / "s_files" / name)
                np.testing.assert_array_equal(a, b, err_msg=name)
    # and the same options as pyvips' own
    ours, theirs = tmp_path / "ours-opts", tmp_path / "vips-opts"
    ours.mkdir(), theirs.mkdir()
    to_dzi(png, ours / "s.dzi", tile_size=256, overlap=0, tile_format="png")
    pyvips.Image.new_from_file(str(demo_png)).dzsave(
        str(theirs / "s"), tile_size=256, overlap=0, suffix=".png"
    )
    assert read_dzi(ours / "s.dzi") == read_dzi(theirs / "s.dzi")
    assert tiles(ours / "s_files") == tiles(theirs / "s_files")


@pytest.mark.parametrize(
    ("shape", "size", "overlap"),
    [
        pytest.param((4097, 3001), 254, 1, marks=pytest.mark.slow),  # two rounds of blocks
        ((300, 2501), 256, 0),
        ((777, 333), 100, 3),
        ((1, 1), 254, 1),
    ],
)
def test_every_tile_at_every_level_is_exact_for_odd_shapes(tmp_path, shape, size, overlap):
    rgb = np.random.default_rng(sum(shape)).integers(0, 256, (*shape, 3), dtype=np.uint8)
    result = to_dzi(rgb, tmp_path / "r.dzi", tile_size=size, overlap=overlap, tile_format="png")
    top = math.ceil(math.log2(max(shape))) if max(shape) > 1 else 0
    assert result.levels == top + 1
    levels = expected_levels(rgb, top + 1)[::-1]
    for level in range(top + 1):
        got = stitch(tmp_path / "r_files", level, levels[level].shape[:2], size, overlap, "png")
        np.testing.assert_array_equal(got, levels[level])


def test_groups_write_one_pyramid_each_and_an_offline_viewer_page(demo_path, tmp_path) -> None:
    region = "&region=0,0,4096,3072"
    result = md.crop_groups(
        {
            "DNA": f"/0/0/0/?c=1|600:24000$0000FF{region}",
            "Tumour & <immune>": f"/0/0/0/?c=3|500:20000$FF0000,4|500:20000$FFFF00{region}",
        },
        tmp_path / "viewer",
        image=demo_path,
        max_size=600,
    )
    folder = Path(result.path)
    names = sorted(p.name for p in folder.iterdir())
    assert names == [
        ".minerva-dask.json",
        "DNA.dzi",
        "DNA_files",
        "Tumour-immune.dzi",
        "Tumour-immune_files",
        "index.html",
        "openseadragon",
    ]
    page = (folder / "index.html").read_text()
    assert "<title>demo-tissue-v1</title>" in page
    assert "Tumour &amp; &lt;immune&gt;</button>" in page and "<immune>" not in page
    assert "Keratin" in page and "CD8" in page and "#FFFF00" in page  # the legend
    assert (folder / "openseadragon" / "openseadragon.min.js").stat().st_size > 100_000
    assert (
        "BSD" in (folder / "openseadragon" / "LICENSE.txt").read_text()
        or "Redistribution" in (folder / "openseadragon" / "LICENSE.txt").read_text()
    )
    # nothing the page loads lies outside the folder or on a server
    loaded = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert loaded == ["openseadragon/openseadragon.min.js"]
    assert not re.search(r"https?://(?!schemas\.microsoft\.com/deepzoom/2008)", page)
    assert read_dzi(folder / "DNA.dzi")["Width"] == 512  # level 3 of the demo
    with pytest.raises(md.OutputError, match="exists"):
        md.crop_groups({"DNA": f"/0/0/0/?c=1{region}"}, folder, image=demo_path, max_size=64)
    md.crop_groups(
        {"DNA": f"/0/0/0/?c=1{region}"}, folder, image=demo_path, max_size=64, overwrite=True
    )
    assert (
        not (folder / "Tumour-immune.dzi").exists() and read_dzi(folder / "DNA.dzi")["Width"] == 64
    )
    assert not list(tmp_path.glob(".*"))


def test_cli_groups_and_their_one_line_errors(demo_path, tmp_path, capsys) -> None:
    region = "&region=0,0,4096,3072&max_size=300"
    args = ["crop", "--image", str(demo_path), "-q"]
    groups = ["--group", f"DNA=/0/0/0/?c=1|600:24000$0000FF{region}"]
    groups += ["--group", f"Keratin=/0/0/0/?c=3|500:20000$FF0000{region}"]
    assert main([*args, *groups, "-o", str(tmp_path / "v"), "--title", "My slide"]) == 0
    assert "<title>My slide</title>" in (tmp_path / "v" / "index.html").read_text()
    assert (tmp_path / "v" / "Keratin_files").is_dir()
    capsys.readouterr()
    for extra, match in (
        (["-o", str(tmp_path / "w.dzi")], "folder"),
        ([], "-o FOLDER"),
        (["-o", str(tmp_path / "v")], "exists"),
        (["-o", str(tmp_path / "u"), "--tile-format", "png", "--overlap", "999"], "overlap"),
    ):
        assert main([*args, *groups, *extra]) == 2
        err = capsys.readouterr().err
        assert err.startswith("minerva-dask: error:") and match in err and err.count("\n") == 1
    unnamed = ["--group", f"/0/0/0/?c=3|500:20000$FF0000,4|500:20000$FFFF00{region}"]
    assert (
        main([*args, *unnamed, "--group", f"/0/0/0/?c=1{region}", "-o", str(tmp_path / "n")]) == 0
    )
    page = (tmp_path / "n" / "index.html").read_text()
    assert ">Keratin + CD8</button>" in page and ">DNA</button>" in page  # named after channels
    assert (tmp_path / "n" / "Keratin-CD8.dzi").exists()
    assert main([*args, *unnamed, *groups, "-o", str(tmp_path / "m")]) == 2
    assert "name every --group" in capsys.readouterr().err
    assert main([*args, f"/0/0/0/?c=1{region}", "-o", str(tmp_path / "s.dzi")]) == 0
    assert read_dzi(tmp_path / "s.dzi")["Format"] == "jpeg"
    out = tmp_path / "f"
    assert main([*args, f"/0/0/0/?c=1{region}", "--format", "dzi", "-o", str(out)]) == 2
    assert ".dzi" in capsys.readouterr().err


@pytest.mark.slow
def test_dzi_export_on_a_local_cluster_writes_the_same_tiles(demo_path, tmp_path, cluster_client):
    source = md.open_image(demo_path)
    rendering = md.render(source, md.parse_request(DEMO), align="output", chunk_size=1016)
    to_dzi(rendering, tmp_path / "threads.dzi", tile_format="png")
    result = to_dzi(rendering, tmp_path / "cluster.dzi", tile_format="png", client=cluster_client)
    assert result.chunks_written == 2 + 1  # two blocks across, then the rest in one
    here, there = tmp_path / "threads_files", tmp_path / "cluster_files"
    assert tiles(here) == tiles(there)
    for name in tiles(here):
        assert (here / name).read_bytes() == (there / name).read_bytes()
