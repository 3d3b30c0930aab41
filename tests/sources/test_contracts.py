"""The source contract (``contract.SourceContract``) for every source beyond local files:
TIFF and Zarr over HTTP and S3, OMERO in both modes, Minerva. Local files run it in
``test_files.py``."""

from __future__ import annotations

import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.request import ResolvedChannel
from tests.conftest import TINY
from tests.reference import independent_pyramid
from tests.servers.minerva import render_tile_maths
from tests.servers.omero import (
    OmeroServer,
    ServedImage,
    quantize,
    render_rgb,
    rendering_settings,
)
from tests.servers.static import StaticServer
from tests.sources.contract import SourceContract
from tests.sources.test_remote import _upload_tree

pytestmark = pytest.mark.slow  # the contract over HTTP, S3, OMERO and Minerva

# one style per channel of the tiny image: what the server is asked to window or composite
STYLES = (
    ResolvedChannel(0, 100.0, 25000.0, (0.0, 0.0, 1.0)),
    ResolvedChannel(1, 0.0, 9000.0, (0.0, 1.0, 0.0)),
    ResolvedChannel(2, 300.0, 20000.0, (1.0, 0.0, 0.0)),
)
QUERY = {"c": "1|100:25000$0000FF,2|0:9000$00FF00,3|300:20000$FF0000", "m": "c"}


@pytest.fixture(scope="module")
def http_url(tmp_path_factory, tiny_ome_tiff, tiny_ome_zarr):
    import shutil

    root = tmp_path_factory.mktemp("contract-http")
    shutil.copy(tiny_ome_tiff, root / "tiny.ome.tif")
    shutil.copytree(tiny_ome_zarr, root / tiny_ome_zarr.name)
    with StaticServer(str(root)) as url:
        yield url


@pytest.fixture(scope="module")
def s3_options(moto_server, tiny_ome_tiff, tiny_ome_zarr):
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": moto_server}, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(anon=False, **options)
    fs.makedirs("contract", exist_ok=True)
    _upload_tree(fs, tiny_ome_tiff, "contract/tiny.ome.tif")
    _upload_tree(fs, tiny_ome_zarr, f"contract/{tiny_ome_zarr.name}")
    return options


@pytest.fixture(scope="module")
def omero(tiny_ome_tiff):
    served = ServedImage.from_tiff(str(tiny_ome_tiff))
    with OmeroServer({1: served}, png=True, public=True) as server:  # PNG: exact pixels
        yield server, served


class TestHttpContract(SourceContract):
    @pytest.fixture(autouse=True, params=["tiff", "zarr"])
    def _sample(self, request, http_url, tiny_ome_tiff, tiny_ome_zarr) -> None:
        self.local = tiny_ome_tiff if request.param == "tiff" else tiny_ome_zarr
        name = "tiny.ome.tif" if request.param == "tiff" else tiny_ome_zarr.name
        self.url = f"{http_url}/{name}"

    def make_source(self):
        return md.open_source(self.url)

    def expected_levels(self):
        return independent_pyramid(self.local)[0]


class TestS3Contract(SourceContract):
    @pytest.fixture(autouse=True, params=["tiff", "zarr"])
    def _sample(self, request, s3_options, tiny_ome_tiff, tiny_ome_zarr) -> None:
        self.local = tiny_ome_tiff if request.param == "tiff" else tiny_ome_zarr
        name = "tiny.ome.tif" if request.param == "tiff" else tiny_ome_zarr.name
        self.url, self.options = f"s3://contract/{name}", s3_options

    def make_source(self):
        return md.open_source(self.url, storage_options=self.options)

    def expected_levels(self):
        return independent_pyramid(self.local)[0]


class _OmeroContract(SourceContract):
    """OMERO's tiles are rendered by the server; the expected pixels are what the
    emulating server renders of the same file (OMERO's maths), read independently."""

    mode = ""

    @pytest.fixture(autouse=True)
    def _server(self, omero, tiny_ome_tiff) -> None:
        self.server, self.served = omero
        self.local = tiny_ome_tiff

    def make_source(self):
        # 256 px tiles: every level spans several, so regions cross tile edges
        return md.open_source(omero=self.server.url, image_id=1, mode=self.mode, tile_size=256)


class TestOmeroWindowedContract(_OmeroContract):
    mode = "windowed"

    def read(self, source, level, rect, channels):
        return source.read_windowed(level, rect, [STYLES[c] for c in channels])

    def expected_levels(self):
        return [
            np.stack([quantize(level[c], s.start, s.end) for c, s in enumerate(STYLES)]).astype(
                np.uint8
            )
            for level in independent_pyramid(self.local)[0]
        ]


class TestOmeroCompositeContract(_OmeroContract):
    mode = "composite"

    def read(self, source, level, rect, channels):  # (y, x, 3) as (3, y, x); every style
        return np.moveaxis(source.read_composite(level, rect, STYLES), 2, 0)

    def expected(self, level, channels):  # one RGB image, whatever channels are named
        return self.expected_levels()[level]

    def expected_levels(self):
        states, model = rendering_settings(self.served, QUERY)
        return [
            np.moveaxis(render_rgb(self.served, level, 0, 0, 0, 0, w, h, states, model), 2, 0)
            for level, (w, h) in enumerate(self.served.sizes)
        ]


class TestMinervaContract(SourceContract):
    @pytest.fixture(autouse=True)
    def _cloud(self, minerva) -> None:
        self.minerva = minerva

    def make_source(self):
        return md.open_source(minerva=TINY, **self.minerva.settings)

    def expected_levels(self):
        return self.minerva.levels[TINY]  # what was published, tile by tile, to S3


class TestMinervaRenderTileContract(TestMinervaContract):
    """Minerva's ``render-tile`` mode: the API renders, lossily, from the published
    16-bit tiles; the expected pixels are its maths applied to the whole published level
    (windows as fractions of 65535, colours as hex), so tile seams would show."""

    def make_source(self):
        return md.open_source(minerva=TINY, mode="render-tile", **self.minerva.settings)

    def read(self, source, level, rect, channels):  # (y, x, 3) as (3, y, x); every style
        return np.moveaxis(source.read_composite(level, rect, STYLES), 2, 0)

    def expected(self, level, channels):  # one RGB image, whatever channels are named
        return self.expected_levels()[level]

    def raw_levels(self):  # the published 16-bit tiles stay readable as they are
        return self.minerva.levels[TINY]

    def expected_levels(self):
        specs = [
            (np.array([round(v * 255) / 255 for v in s.color]), s.start / 65535, s.end / 65535)
            for s in STYLES
        ]
        return [
            np.moveaxis(render_tile_maths([planes[s.index] for s in STYLES], specs), 2, 0)
            for planes in self.minerva.levels[TINY]
        ]
