"""A zarr chunk that is cut short or corrupt fails the read naming the chunk, never zeros.

numcodecs' Blosc decodes a cut chunk without complaint (it trusts the header's sizes), so
without a check a chunk cut in half renders half black with exit status 0.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import zarr
from numcodecs import Blosc
from zarr.codecs import BloscCodec, BytesCodec, ShardingCodec

import minerva_dask as md
from minerva_dask.errors import TileReadError
from minerva_dask.sources import read_level

DATA = np.random.default_rng(0).integers(0, 60000, (64, 64), dtype=np.uint16)
# name: (zarr format, create_array options, the stored object to cut, its key in messages)
LAYOUTS = {
    "v2-blosc": (2, {"chunks": (32, 32), "compressors": Blosc()}, "0/1.1", "1.1"),
    "v3-blosc": (3, {"chunks": (32, 32), "compressors": [BloscCodec()]}, "0/c/1/1", "c/1/1"),
    "v2-uncompressed": (2, {"chunks": (32, 32), "compressors": None}, "0/1.1", "1.1"),
    "v3-uncompressed": (3, {"chunks": (32, 32), "compressors": None}, "0/c/1/1", "c/1/1"),
    "v3-sharded-index-first": (
        3,
        {
            "chunks": (64, 64),
            "compressors": None,
            "serializer": ShardingCodec(
                chunk_shape=(32, 32), codecs=[BytesCodec(), BloscCodec()], index_location="start"
            ),
        },
        "0/c/0/0",
        "c/0/0",
    ),
}


def _write(path, zarr_format: int, options: dict) -> None:
    group = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    multiscale = {
        "axes": [{"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
        "datasets": [
            {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1]}]}
        ],
    }
    if zarr_format == 2:
        group.attrs["multiscales"] = [{"version": "0.4", **multiscale}]
    else:
        group.attrs["ome"] = {"version": "0.5", "multiscales": [multiscale]}
    group.create_array("0", shape=DATA.shape, dtype=DATA.dtype, **options)[:] = DATA


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_cut_chunk_fails_naming_the_chunk(tmp_path, layout) -> None:
    zarr_format, options, stored, key = LAYOUTS[layout]
    path = tmp_path / f"{layout}.ome.zarr"
    _write(path, zarr_format, options)
    np.testing.assert_array_equal(read_level(md.open_image(path), 0)[0], DATA)
    chunk = path / stored
    os.truncate(chunk, os.path.getsize(chunk) * 3 // 4)  # a quarter cut off the end
    source = md.open_image(path)
    with pytest.raises(TileReadError) as info:
        read_level(source, 0)
    message = str(info.value)
    assert f"{path.name}: reading level 0" in message
    assert f"(chunk {key})" in message
    assert "\n" not in message


def test_a_blosc_chunk_cut_in_half_is_named_as_such(tmp_path) -> None:
    path = tmp_path / "half.ome.zarr"
    _write(path, 2, {"chunks": (32, 32), "compressors": Blosc(cname="lz4")})
    chunk = path / "0/0.1"
    os.truncate(chunk, os.path.getsize(chunk) // 2)
    source = md.open_image(path)
    np.testing.assert_array_equal(
        source.read_region(0, md.Rect(0, 0, 32, 32), [0])[0], DATA[:32, :32]
    )
    with pytest.raises(TileReadError, match=r"x=32, y=0, 32 x 32 \(chunk 0\.1\) .* blosc chunk"):
        source.read_region(0, md.Rect(32, 0, 32, 32), [0])
