"""An HTTP server that ignores Range: small files are fetched whole once, larger refused."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.geometry import Rect
from minerva_dask.sources._ranges import NoRangeSupportError
from tests.servers.static import PlainServer

FILES = {
    "tiled.ome.tif": "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff",  # tiles, read by TiledPlanes
    "strips.ome.tif": "ome-tiff/multi-channel-deflate.ome.tif",  # strips, tifffile's store
}


@pytest.fixture(scope="module")
def no_range(tmp_path_factory, shared_data):
    served = tmp_path_factory.mktemp("no-range")
    for name, sample in FILES.items():
        shutil.copy(shared_data / sample, served / name)
    with PlainServer(str(served)) as server:
        yield server.url, server.requests, shared_data


@pytest.mark.parametrize("name", sorted(FILES))
def test_a_small_file_is_fetched_whole_once_and_reads_like_the_local_file(no_range, name):
    url, log, shared_data = no_range
    local = md.open_image(shared_data / FILES[name])
    log.clear()
    remote = md.open_image(f"{url}/{name}")
    assert remote.info.levels == local.info.levels
    channels = list(range(local.info.size_c))
    for level, spec in enumerate(local.info.levels):
        rect = Rect(3, 5, min(300, spec.width - 3), min(200, spec.height - 5))
        np.testing.assert_array_equal(
            remote.read_region(level, rect, channels), local.read_region(level, rect, channels)
        )
    # one probe of a single byte, then the whole file once; every read after it from memory
    probe = log.index(("GET", "bytes=1-1"))
    assert log[probe + 1 :] == [("GET", None)], log


def test_a_file_over_the_limit_is_refused_in_one_line_naming_the_option(no_range) -> None:
    url, _, _ = no_range
    with pytest.raises(NoRangeSupportError) as info:
        md.open_image(f"{url}/tiled.ome.tif", storage_options={"whole_file_max_bytes": 1000})
    message = str(info.value)
    assert "does not support HTTP Range" in message and "whole_file_max_bytes" in message
    assert "\n" not in message


def test_a_malformed_limit_is_refused(no_range) -> None:
    url, _, _ = no_range
    with pytest.raises(md.SourceError, match="whole_file_max_bytes='lots'"):
        md.open_image(f"{url}/tiled.ome.tif", storage_options={"whole_file_max_bytes": "lots"})
