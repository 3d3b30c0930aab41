"""The OME-TIFF writer's pixel work on the workers: every level exact, whatever the stages.

A task compresses the tiles of its block and of the levels it can halve into whole tiles,
and leaves a small block for the task above (see ``writers/_tiff_encode.py``). The block
side is a multiple of the tile: 1, 2, 3, 8 times it here, so a stage makes 1, 2, 1 or 4
levels, and the stages above gather 2, 4, 2 or 16 small blocks a side. Every level read
back with tifffile must equal the reference 2 x 2 means of the input, computed here
independently; RGB renderings and ``(c, y, x)`` uint16 planes; threaded and on a
LocalCluster of worker processes (task results pickled between processes).
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from minerva_dask.exports import to_ome_tiff, to_ome_tiff_planes
from minerva_dask.writers._pyramid import pyramid_shapes
from minerva_dask.writers.ome_tiff import tiff_tile

# (height, width, chunk): the tile follows the shorter side (32 for 40 rows), the block
# side is chunk rounded up to whole tiles: 256 = 8 tiles, 96 = 3, 128 = 1, 64 = 1 (tile
# 64), 1024 = 2 tiles of 512
CASES = [(40, 1000, 256), (40, 1000, 96), (700, 1100, 128), (300, 2000, 64), (1100, 1500, 1024)]


def reference_levels(pixels: np.ndarray, count: int) -> list[np.ndarray]:
    """``(y, x, ...)`` pixels and their 2 x 2 means, rounded half up, odd edges repeated."""
    levels = [pixels]
    for _ in range(count - 1):
        prev = levels[-1].astype(np.int64)
        h, w = prev.shape[:2]
        prev = np.pad(prev, ((0, h % 2), (0, w % 2)) + ((0, 0),) * (prev.ndim - 2), mode="edge")
        quad = prev[0::2, 0::2] + prev[1::2, 0::2] + prev[0::2, 1::2] + prev[1::2, 1::2]
        levels.append(((quad + 2) // 4).astype(pixels.dtype))
    return levels


def _rgb(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(height * 7919 + width)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _planes(height: int, width: int, count: int = 5) -> np.ndarray:
    rng = np.random.default_rng(width)
    planes = rng.integers(0, 65536, (count, height, width), dtype=np.uint16)
    planes[0, :16, :16] = 65535  # sums beyond 16 bits must not wrap
    return planes


def _check_rgb(path, pixels: np.ndarray, chunk: int) -> None:
    tile = tiff_tile(pixels.shape[0], pixels.shape[1], -(-chunk // 16) * 16)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and tif.series[0].axes == "YXS"
        levels = [level.asarray() for level in tif.series[0].levels]
        assert tif.pages[0].tilewidth == tile
    want = reference_levels(pixels, len(levels))
    assert len(levels) == len(pyramid_shapes(*pixels.shape[:2], tile))
    for index, (got, expected) in enumerate(zip(levels, want, strict=True)):
        np.testing.assert_array_equal(got, expected, err_msg=f"level {index}")


@pytest.mark.parametrize(("height", "width", "chunk"), CASES)
def test_every_level_equals_the_2x2_means_for_any_block_to_tile_ratio(
    tmp_path, height, width, chunk
) -> None:
    pixels = _rgb(height, width)
    to_ome_tiff(pixels, tmp_path / "s.ome.tif", chunk=chunk, compute_kwargs={"num_workers": 4})
    _check_rgb(tmp_path / "s.ome.tif", pixels, chunk)


def test_a_rechunked_image_whose_blocks_share_tasks_is_exact(tmp_path) -> None:
    """Chunks of 100 px written in blocks of 128: each block needs up to four chunks, shared
    with its neighbours (run together on the threaded scheduler, not once per block)."""
    import dask.array as da

    from minerva_dask.writers._tiff_run import _Blocks

    pixels = _rgb(700, 1000)
    image = da.from_array(pixels, chunks=(100, 100, 3))
    assert _Blocks(image.rechunk((128, 128, 3)), None).shared
    to_ome_tiff(image, tmp_path / "r.ome.tif", chunk=128)
    _check_rgb(tmp_path / "r.ome.tif", pixels, 128)


def _check_planes(path, planes: np.ndarray, names: list[str]) -> None:
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome
        series = tif.series[0]
        assert series.axes == "CYX" and series.dtype == np.uint16
        assert len(tif.pages) == planes.shape[0]  # one page per channel, SubIFDs below
        assert [c.get("Name") for c in _channels(tif.ome_metadata)] == names
        levels = [level.asarray() for level in series.levels]
    want = reference_levels(np.moveaxis(planes, 0, -1), len(levels))
    assert len(levels) > 2
    for index, (got, expected) in enumerate(zip(levels, want, strict=True)):
        np.testing.assert_array_equal(got, np.moveaxis(expected, -1, 0), err_msg=f"level {index}")


def _channels(xml: str) -> list:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(xml)
    return [e for e in root.iter() if e.tag.endswith("}Channel")]


def test_uint16_planes_are_written_as_one_page_per_channel_every_level_exact(tmp_path) -> None:
    planes = _planes(300, 700)
    names = ["DNA", "CD3", "CD8", "Keratin", "Ki67"]
    result = to_ome_tiff_planes(planes, tmp_path / "p.ome.tif", channel_names=names, chunk=128)
    _check_planes(tmp_path / "p.ome.tif", planes, names)
    assert result.levels == 4  # 700 -> 350 -> 175 -> 88 (<= 128)


@pytest.mark.slow
def test_planes_and_stages_on_a_local_cluster_of_processes(
    tmp_path, cluster_client, monkeypatch
) -> None:
    """Every level exact on worker processes, and the client receives tile bytes only."""
    from minerva_dask.compute._distributed import DistributedStages

    received = []
    fetch = DistributedStages.result

    def result(self, handle):
        tiles = fetch(self, handle)
        received.extend(tiles)
        return tiles

    monkeypatch.setattr(DistributedStages, "result", result)
    planes = _planes(300, 700)
    names = [f"c{i}" for i in range(5)]
    to_ome_tiff_planes(
        planes, tmp_path / "p.ome.tif", channel_names=names, chunk=96, client=cluster_client
    )
    _check_planes(tmp_path / "p.ome.tif", planes, names)
    for height, width, chunk in CASES[:2]:
        pixels = _rgb(height, width)
        path = tmp_path / f"{height}x{width}-{chunk}.ome.tif"
        to_ome_tiff(pixels, path, chunk=chunk, client=cluster_client)
        _check_rgb(path, pixels, chunk)
    assert received and all(
        len(t) == 5 and all(isinstance(v, int) for v in t[:4]) and isinstance(t[4], bytes)
        for t in received
    )


def test_a_bigtiff_pyramid_reads_like_a_classic_one(tmp_path, monkeypatch) -> None:
    """Above 4 GB the file is a BigTIFF (64-bit offsets, IFD8 SubIFDs): forced here."""
    import pyvips

    from minerva_dask.writers import ome_tiff

    planes = _planes(200, 300, 2)
    monkeypatch.setattr(ome_tiff, "CLASSIC_LIMIT", 0)
    to_ome_tiff_planes(planes, tmp_path / "b.ome.tif", channel_names=["a", "b"], chunk=64)
    _check_planes(tmp_path / "b.ome.tif", planes, ["a", "b"])
    pixels = _rgb(130, 170)
    to_ome_tiff(pixels, tmp_path / "rgb.ome.tif", chunk=64)
    with tifffile.TiffFile(tmp_path / "b.ome.tif") as tif:
        assert tif.is_bigtiff
    _check_rgb(tmp_path / "rgb.ome.tif", pixels, 64)
    levels = [pyvips.Image.new_from_file(str(tmp_path / "rgb.ome.tif")).numpy()]
    levels += [
        pyvips.Image.tiffload(str(tmp_path / "rgb.ome.tif"), subifd=i).numpy() for i in range(2)
    ]
    for got, want in zip(levels, reference_levels(pixels, 3), strict=True):
        np.testing.assert_array_equal(got, want)


def test_planes_that_cannot_be_written_are_refused_before_any_file(tmp_path) -> None:
    from minerva_dask.errors import OutputError

    with pytest.raises(OutputError, match="unsigned integer"):
        to_ome_tiff_planes(np.zeros((2, 8, 8), np.int16), tmp_path / "a.ome.tif")
    with pytest.raises(OutputError, match="JPEG needs uint8"):
        to_ome_tiff_planes(_planes(16, 16, 2), tmp_path / "a.ome.tif", compression="jpeg")
    with pytest.raises(OutputError, match="2 channel names for 5 planes"):
        to_ome_tiff_planes(_planes(16, 16), tmp_path / "a.ome.tif", channel_names=["a", "b"])
    assert list(tmp_path.iterdir()) == []


MEMORY_SCRIPT = """
import sys
import minerva_dask as md
from minerva_dask._demo import SyntheticSource
from minerva_dask.exports import to_ome_tiff
from minerva_dask.exports import to_ome_zarr
kind, out, width, height = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
source = SyntheticSource(width, height, 4, tile=512)
request = md.parse_request("/0/0/0/?c=1|0:65535$FF0000,2|0:65535$00FF00,3|0:65535$0000FF,"
                           f"4|0:65535$FFFFFF&region=0,0,{width},{height}&max_size={width}")
rendering = md.render(source, request, align="output", chunk_size=1024)
write = to_ome_zarr if kind == "zarr" else to_ome_tiff
write(rendering, out, compute_kwargs={"num_workers": 2})
# VmHWM: this process image's peak. ru_maxrss would include the parent's RSS at fork time.
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM")))
"""


def _peak(tmp_path, kind: str, width: int, height: int) -> int:
    output = tmp_path / (f"{width}.ome.zarr" if kind == "zarr" else f"{width}.ome.tif")
    result = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, kind, str(output), str(width), str(height)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_the_writing_process_peak_does_not_grow_with_the_slide_width(tmp_path, kind) -> None:
    """Two rows of 1024-pixel chunks, 4,096 then 16,384 pixels wide: a row of rendered
    RGB is 12 then 50 MB, of 4 uint16 channels 34 then 134 MB. A writer holding rows (or
    a level) in this process peaks 20 % or more higher on the wider slide; one holding a
    bounded window of blocks does not. Measured here (VmHWM): OME-TIFF 165 / 179 MB (the
    band writer before it: 203 / 292 MB), OME-Zarr 190 / 204 MB."""
    narrow = _peak(tmp_path, kind, 4096, 2048)
    wide = _peak(tmp_path, kind, 16384, 2048)
    assert wide < 1.2 * narrow, f"{narrow / 2**20:.0f} MB -> {wide / 2**20:.0f} MB"
