"""The zarr-free tiled TIFF reader reads exactly what tifffile's zarr store reads."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import tifffile
import zarr

from minerva_dask.sources._tiff_tiles import TiledPlanes

TILED = [
    "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",  # JPEG with shared tables
    "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif",
]


def _pairs(path):
    """(TiledPlanes, zarr array) for every level of series 0 that the fast path takes."""
    tif = tifffile.TiffFile(path)
    series = tif.series[0]
    node = zarr.open(series.aszarr(), mode="r")
    stored = [node[str(i)] for i in range(len(series.levels))] if len(series.levels) > 1 else [node]
    lock = threading.RLock()
    pairs = [
        (TiledPlanes(level, lock), array)
        for level, array in zip(series.levels, stored, strict=True)
        if TiledPlanes.supports(level)
    ]
    assert pairs, f"{path} has no level the fast path reads"
    return tif, pairs


def _selections(shape, rng):
    height, width = shape[-2:]
    for _ in range(6):
        y0, x0 = rng.integers(0, height), rng.integers(0, width)
        y1, x1 = rng.integers(y0, height + 1), rng.integers(x0, width + 1)
        leading = [slice(None)] * (len(shape) - 2)
        yield (*leading, slice(y0, y1), slice(x0, x1))
    yield (*[slice(None)] * (len(shape) - 2), slice(None), slice(None))  # whole level
    if len(shape) > 2 and shape[0] > 1:  # an int, and an orthogonal list, on the first axis
        yield (shape[0] - 1, *[slice(None)] * (len(shape) - 3), slice(0, 7), slice(None))
        rest = [slice(None)] * (len(shape) - 3)
        yield ([shape[0] - 1, 0], *rest, slice(height // 3, height), slice(1, width - 1))


@pytest.mark.parametrize("name", TILED)
def test_regions_equal_the_zarr_store_reads(shared_data, name) -> None:
    tif, pairs = _pairs(shared_data / name)
    rng = np.random.default_rng(3)
    with tif:
        for ours, theirs in pairs:
            assert ours.shape == theirs.shape
            for selection in _selections(ours.shape, rng):
                expected = (
                    theirs.oindex if any(isinstance(s, list) for s in selection) else theirs
                )[selection]
                np.testing.assert_array_equal(ours[selection], expected, err_msg=str(selection))


def test_generated_pyramid_edges_equal_tifffile(tiny_ome_tiff, tiny_data) -> None:
    tif, pairs = _pairs(tiny_ome_tiff)
    with tif:
        level0 = pairs[0][0]
        np.testing.assert_array_equal(level0[:, :, :], tiny_data)
        np.testing.assert_array_equal(level0[1, 650:700, 1000:1100], tiny_data[1, 650:, 1000:])
        assert level0[:, 5:5, :].shape == (3, 0, 1100)
        # exactly one stored tile (256 px) of one plane: returned as decoded, not copied
        np.testing.assert_array_equal(level0[1, 256:512, 512:768], tiny_data[1, 256:512, 512:768])
        np.testing.assert_array_equal(level0[2:3, 0:256, 0:256], tiny_data[2:3, :256, :256])
        np.testing.assert_array_equal(level0[[0], 512:768, 0:256], tiny_data[[0], 512:768, :256])
        # a plane asked twice: both copies filled (its tiles read once)
        np.testing.assert_array_equal(
            level0[[1, 1], 0:300, 100:400], tiny_data[[1, 1], :300, 100:400]
        )


def test_absent_tiles_read_as_zeros(tmp_path) -> None:
    data = np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) + 1
    path = tmp_path / "sparse.tif"
    tifffile.imwrite(path, data, tile=(16, 16))
    with tifffile.TiffFile(path, mode="r+b") as tif:  # drop tile 5 (row 1, column 1)
        counts = list(tif.pages[0].tags["TileByteCounts"].value)
        counts[5] = 0
        tif.pages[0].tags["TileByteCounts"].overwrite(counts)
    with tifffile.TiffFile(path) as tif:
        planes = TiledPlanes(tif.series[0].levels[0], threading.RLock())
        got = planes[:, :]
    expected = data.copy()
    expected[16:32, 16:32] = 0
    np.testing.assert_array_equal(got, expected)


def test_bad_selections_are_index_errors(tiny_ome_tiff) -> None:
    tif, pairs = _pairs(tiny_ome_tiff)
    with tif:
        planes = pairs[0][0]
        with pytest.raises(IndexError, match="3 indices"):
            planes[0, 0]
        with pytest.raises(IndexError, match="step 1"):
            planes[:, ::2, :]
        with pytest.raises(IndexError):
            planes[5, :, :]


def test_a_corrupt_tile_is_an_error_naming_the_file_and_region(tiny_ome_tiff, tmp_path) -> None:
    import shutil

    import minerva_dask as md
    from minerva_dask.errors import TileReadError

    path = shutil.copy(tiny_ome_tiff, tmp_path / "corrupt.ome.tif")
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[0].pages[1]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xff" * count)
    request = md.parse_request("/0/0/0/?c=2|0:9000$00FF00&region=0,0,200,100")
    with pytest.raises(TileReadError, match=r"corrupt\.ome\.tif.*level 0, x=0, y=0"):
        md.render(md.open_image(path), request).compute()


def _with_last_count_past_the_end(path, data, **layout) -> None:
    """Write ``data`` (c, y, x) as a plain TIFF, then make the last tile or strip of the
    last plane claim 100 bytes more than the file holds."""
    import os

    tifffile.imwrite(path, data, photometric="minisblack", **layout)
    size = os.path.getsize(path)
    with tifffile.TiffFile(path, mode="r+b") as tif:
        page = tif.pages[-1]
        tag = page.tags["TileByteCounts" if page.is_tiled else "StripByteCounts"]
        counts = list(tag.value)
        counts[-1] = size - page.dataoffsets[-1] + 100
        tag.overwrite(counts)


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_a_tile_running_past_the_end_of_the_file_fails_naming_it(tmp_path, compression) -> None:
    import minerva_dask as md
    from minerva_dask.errors import TileReadError
    from minerva_dask.sources import read_level

    data = (np.arange(3 * 64 * 80, dtype=np.uint16).reshape(3, 64, 80) * 7) + 1
    path = tmp_path / f"cut-tile-{compression}.tif"
    _with_last_count_past_the_end(path, data, tile=(16, 16), compression=compression)
    source = md.open_image(path)
    np.testing.assert_array_equal(read_level(source, 0, [0, 1]), data[:2])  # intact planes
    with pytest.raises(TileReadError) as info:
        read_level(source, 0, [2])
    message = str(info.value)
    assert f"{path.name}: reading level 0, x=64, y=48" in message
    assert "tile 19 (x=64, y=48) of plane 2" in message and "truncated" in message
    assert "\n" not in message


def test_a_strip_running_past_the_end_of_the_file_fails_naming_it(tmp_path) -> None:
    import minerva_dask as md
    from minerva_dask.errors import SourceError

    data = (np.arange(3 * 64 * 80, dtype=np.uint16).reshape(3, 64, 80) * 7) + 1
    path = tmp_path / "cut-strip.tif"
    _with_last_count_past_the_end(path, data, rowsperstrip=8, compression="zlib")
    with pytest.raises(SourceError, match=r"cut-strip\.tif: level 0, plane 2, strip 7: .* past"):
        md.open_image(path)


def test_a_truncated_tiff_opens_with_one_warning_saying_it_looks_damaged(
    tmp_path, shared_data
) -> None:
    """A TIFF cut short loses its OME-XML and SubIFD levels; tifffile logs that as raw
    lines. It is said once, as a warning naming the file."""
    import warnings

    import minerva_dask as md

    data = (shared_data / "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff").read_bytes()
    cut = tmp_path / "cut.ome.tiff"
    cut.write_bytes(data[: len(data) * 9 // 10])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        md.open_image(cut).close()
    damaged = [str(w.message) for w in caught if "looks damaged" in str(w.message)]
    assert len(damaged) == 1 and str(cut) in damaged[0]
