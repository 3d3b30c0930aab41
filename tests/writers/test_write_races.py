"""No write path races: every stored chunk is written by exactly one task.

Odd output shapes (strips, tiny, prime, just above and below the chunk side) are exported
in every format with a small chunk, on the threaded scheduler (with more threads than
cores, to make collisions likely) and on a LocalCluster, several times; level 0 must equal
the PNG of the same request exactly, and every lower level the 2 x 2 mean of the level
above as stored. Two blocks writing one zarr chunk at once lose pixels at random, which
these comparisons see.
"""

from __future__ import annotations

import itertools

import imagecodecs
import numpy as np
import pytest
import tifffile
import zarr

import minerva_dask as md
from minerva_dask.exports import to_ome_tiff, to_ome_zarr, to_png
from minerva_dask.writers._meta import check_grid, rgb_grid
from minerva_dask.writers._pyramid import downsample_2x

pytestmark = pytest.mark.slow  # every format on threads and a local cluster

CHUNK = 64
# (height, width): wide and tall strips thinner than a chunk, tiny, prime, one pixel
# above and below the chunk side, an exact multiple
SHAPES = [(3, 300), (300, 5), (1, 1), (5, 7), (67, 131), (65, 65), (63, 63), (128, 64)]
# zarr-0.5 is sharded (4 x 4 chunks per shard: one task writes a whole shard), the others not
FORMATS = ["ome-tiff", "zarr-0.4", "zarr-0.5", "zarr-0.5-unsharded"]


def _request(height: int, width: int) -> md.RenderRequest:
    # a region inside the 1100 x 700 tiny image, offset so chunks straddle source tiles
    return md.parse_request(
        "/0/0/0/?c=1|500:20000$0000FF,2|0:8000$00FF00,3|300:9000$FF8000"
        f"&region=201,97,{width},{height}&max_size=5000"
    )


def _rendering(source, height: int, width: int) -> md.Rendering:
    return md.render(source, _request(height, width), align="output", chunk_size=CHUNK)


def _png(source, height: int, width: int, path) -> np.ndarray:
    to_png(md.render(source, _request(height, width)), path)
    pixels = imagecodecs.png_decode(path.read_bytes())
    assert pixels.shape == (height, width, 3)
    return pixels


def _levels(path, kind: str) -> list[np.ndarray]:
    if kind == "ome-tiff":
        with tifffile.TiffFile(path) as tif:
            return [level.asarray() for level in tif.series[0].levels]
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    multiscale = (attrs.get("ome") or attrs)["multiscales"][0]
    arrays = [group[d["path"]] for d in multiscale["datasets"]]
    # the stored grid is the one chunk side; shards of 4 x 4 chunks, or fewer where level 0
    # spans fewer chunks (a one-chunk image is not sharded)
    span = min(4, max(-(-n // CHUNK) for n in arrays[0].shape[1:]))
    for array in arrays:
        assert tuple(array.chunks) == (3, CHUNK, CHUNK)
        sharded = kind == "zarr-0.5" and span > 1
        assert array.shards == ((3, span * CHUNK, span * CHUNK) if sharded else None)
    return [np.moveaxis(array[...], 0, 2) for array in arrays]


def _export(rendering, path, kind: str, client) -> None:
    options = None if client is not None else {"num_workers": 8}
    if kind == "ome-tiff":
        to_ome_tiff(rendering, path, chunk=CHUNK, client=client, compute_kwargs=options)
    else:
        version = kind.split("-")[1]
        shard = 1 if kind.endswith("unsharded") else None
        to_ome_zarr(
            rendering,
            path,
            version=version,
            chunk=CHUNK,
            shard=shard,
            client=client,
            compute_kwargs=options,
        )


def _check_levels(levels: list[np.ndarray], png: np.ndarray) -> None:
    np.testing.assert_array_equal(levels[0], png)
    assert max(levels[-1].shape[:2]) <= CHUNK
    for above, below in itertools.pairwise(levels):
        np.testing.assert_array_equal(below, downsample_2x(above))


def _run_all(tiny_ome_tiff, tmp_path, client, repeats: int) -> None:
    source = md.open_image(tiny_ome_tiff)
    for height, width in SHAPES:
        png = _png(source, height, width, tmp_path / f"{height}x{width}.png")
        for kind in FORMATS:
            suffix = ".ome.tif" if kind == "ome-tiff" else ".ome.zarr"
            for repeat in range(repeats):
                path = tmp_path / f"{height}x{width}-{kind}-{repeat}{suffix}"
                _export(_rendering(source, height, width), path, kind, client)
                _check_levels(_levels(path, kind), png)


def test_odd_shapes_export_identically_in_every_format_on_threads(tiny_ome_tiff, tmp_path):
    _run_all(tiny_ome_tiff, tmp_path, None, repeats=3)


def test_odd_shapes_export_identically_in_every_format_on_a_local_cluster(
    tiny_ome_tiff, tmp_path, cluster_client
):
    _run_all(tiny_ome_tiff, tmp_path, cluster_client, repeats=2)


def test_a_strip_thinner_than_a_chunk_is_stored_on_the_chunk_grid(tiny_ome_tiff, tmp_path):
    """The reported case, through ``crop``: 999 rows under 1024-pixel blocks were stored
    as 999-pixel zarr chunks, so two blocks rewrote one chunk and pixels went black."""
    request = _request(40, 1000)
    for version in ("0.5", "0.4"):
        out = tmp_path / f"strip-{version}.ome.zarr"
        md.crop(request, out, image=tiny_ome_tiff, chunk=128, zarr_version=version)
        arrays = zarr.open_group(str(out), mode="r")
        assert tuple(arrays["0"].chunks) == (3, 128, 128)
        md.crop(request, tmp_path / "strip.png", image=tiny_ome_tiff)
        png = imagecodecs.png_decode((tmp_path / "strip.png").read_bytes())
        np.testing.assert_array_equal(np.moveaxis(arrays["0"][...], 0, 2), png)


def test_a_grid_that_does_not_match_the_store_is_an_internal_error() -> None:
    check_grid(((64, 64, 3), (5,)), 64)
    with pytest.raises(RuntimeError, match=r"internal error.*not aligned"):
        check_grid(((40,), (64, 64)), 40)
    with pytest.raises(RuntimeError, match="internal error"):
        check_grid(((64, 32, 64),), 64)


def test_the_grid_is_one_side_whatever_the_input_chunks() -> None:
    import dask.array as da

    strip = da.zeros((999, 4091, 3), dtype=np.uint8, chunks=(999, 1024, 3))
    data, side = rgb_grid(strip)
    assert side == 1024 and data.chunks[:2] == ((999,), (1024, 1024, 1024, 1019))
    data, side = rgb_grid(da.zeros((70, 50, 3), dtype=np.uint8, chunks=(33, 20, 3)), multiple=16)
    assert side == 48 and data.chunks[:2] == ((48, 22), (48, 2))
