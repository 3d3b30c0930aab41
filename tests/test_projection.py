"""Z projections (``p=intmax|START:END``, ``intmean``, ``intsum``): lazy, pixel-exact."""

from __future__ import annotations

from urllib.parse import unquote

import dask
import numpy as np
import pytest
import tifffile

import minerva_dask as md
from minerva_dask.errors import RequestError
from minerva_dask.projection import Projection, parse_projection
from tests.reference import composite_linear

ZSERIES = "ome-tiff/multi-channel-z-series.ome.tif"
WINDOWS = [(-1, 60), (-1, 90), (0, 50)]
COLORS = [(0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)]
C = "1|-1:60$0000FF,2|-1:90$00FF00,3|0:50$FF0000"


@pytest.fixture(scope="module")
def stack(shared_data):
    """The z-series sample as tifffile reads it: (c, z, y, x) int8."""
    path = shared_data / ZSERIES
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes == "CZYX"
        return path, tif.series[0].asarray()


def expected_planes(data: np.ndarray, kind: str, start: int, end: int) -> np.ndarray:
    planes = data[:, start : end + 1]
    if kind == "intmax":
        return planes.max(axis=1)
    if kind == "intmean":
        return planes.mean(axis=1).astype(data.dtype)  # truncated toward zero, as OMERO
    return np.clip(planes.astype(np.int64).sum(axis=1), -128, 127).astype(data.dtype)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["intmax", "intmean", "intsum"])
@pytest.mark.parametrize("span", [(0, 4), (1, 3), (2, 2)])
def test_projection_renders_equal_numpy_over_the_planes_then_the_reference(
    stack, kind, span
) -> None:
    path, data = stack
    start, end = span
    request = md.parse_request(f"/0/0/0/?c={C}&region=0,0,439,167&p={kind}|{start}:{end}")
    assert request.projection == Projection(kind, start, end)
    planes = expected_planes(data, kind, start, end)
    source = md.open_image(path)
    arrays = md.channel_arrays(source, request)
    rendering = md.render(source, request)
    *raw, got = dask.compute(*arrays.values(), rendering.data)  # one pass over the planes
    for i, array in enumerate(raw):
        assert array.dtype == np.int8
        np.testing.assert_array_equal(array, planes[i])
    np.testing.assert_array_equal(got, composite_linear(planes, WINDOWS, COLORS))


def test_intmax_differs_from_any_single_plane(stack) -> None:
    """The sample's planes differ: a projection that read only z would fail above."""
    _, data = stack
    maxima = data.max(axis=1)
    assert all((maxima != data[:, z]).any() for z in range(data.shape[1]))
    assert (data.mean(axis=1).astype(np.int8) != data[:, 0]).any()


def test_a_projection_without_a_range_takes_the_whole_stack(stack) -> None:
    path, data = stack
    request = md.parse_request(f"/0/0/0/?c={C}&region=0,0,439,167&p=intmax")
    arrays = md.channel_arrays(md.open_image(path), request)
    np.testing.assert_array_equal(arrays[0].compute(), data[0].max(axis=0))
    assert "p=intmax" in request.to_url()


def test_projection_is_lazy_and_reads_chunk_by_chunk(stack) -> None:
    path, data = stack
    request = md.parse_request(f"/0/0/0/?c={C}&region=0,0,439,167&p=intmean|0:4")
    rendering = md.render(md.open_image(path), request, chunk_size=64, align="output")
    assert len(rendering.graph) > 4  # one task per chunk, not one over the image
    block = rendering.compute_chunk(1, 2)
    planes = expected_planes(data, "intmean", 0, 4)[:, 64:128, 128:192]
    np.testing.assert_array_equal(block, composite_linear(planes, WINDOWS, COLORS))


def test_projection_round_trips_through_the_url() -> None:
    for text in ("intmax|0:4", "intmean|2:3", "intsum"):
        request = md.parse_request(f"/1/0/0/?c=1&region=0,0,5,5&p={text}")
        assert md.parse_request(request.to_url()) == request
        assert f"p={text}" in request.to_url()
    assert md.parse_request("/1/0/0/?c=1&region=0,0,5,5&p=normal").projection is None
    assert parse_projection("intmax|2:") == Projection("intmax", 2, None)


def test_a_range_beyond_the_stack_is_refused_before_any_read(stack) -> None:
    path, _ = stack
    request = md.parse_request(f"/0/0/0/?c={C}&region=0,0,439,167&p=intmax|0:5")
    with pytest.raises(RequestError, match="reaches z=5, but the image has 5 z-planes"):
        md.render(md.open_image(path), request)


def test_the_cli_renders_a_projection(stack, tmp_path) -> None:
    from PIL import Image

    from minerva_dask.cli import main

    path, data = stack
    out = tmp_path / "max.png"
    url = f"/0/0/0/?c={C}&region=0,0,439,167&p=intmax|0:4"
    assert main(["crop", url, "--image", str(path), "-o", str(out), "-q"]) == 0
    expected = composite_linear(expected_planes(data, "intmax", 0, 4), WINDOWS, COLORS)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)


@pytest.fixture(scope="module")
def zstack_servers(shared_data):
    from tests.servers.omero import OmeroServer, ServedImage

    images = {5: ServedImage.from_tiff(str(shared_data / ZSERIES))}
    with OmeroServer(images, png=True) as micro, OmeroServer(images) as web:
        yield micro, web


OMERO_CREDS = {"username": "alice", "password": "wonderland"}


def test_omero_ms_image_region_is_sent_p_as_is_in_composite_mode(stack, zstack_servers) -> None:
    _, data = stack
    micro, _ = zstack_servers
    request = md.parse_request(f"/5/0/0/?c={C}&region=0,0,439,167&p=intmax|0:4")
    source = md.open_omero(micro.url, 5, **OMERO_CREDS)
    before = len(micro.state.tile_log)
    got = md.render(source, request).compute()
    sent = [unquote(u) for u in micro.state.tile_log[before:]]
    assert sent and all("p=intmax|0:4" in u for u in sent), sent
    server_max = np.maximum(data.max(axis=1), 0)  # OMERO's maximum starts at 0
    np.testing.assert_array_equal(got, _omero_composite(server_max))


def _omero_composite(planes: np.ndarray) -> np.ndarray:
    from tests.servers.omero import quantize

    out = np.zeros((*planes.shape[1:], 3), np.int32)
    for plane, (s, e), rgb in zip(planes, WINDOWS, COLORS, strict=True):
        q = quantize(plane, s, e, "linear", 1.0).astype(np.int32)
        for i in range(3):
            out[..., i] = np.minimum(255, out[..., i] + (rgb[i] * q).astype(np.int32))
    return out.astype(np.uint8)


def test_plain_omero_web_ignores_p_so_a_projection_is_refused(zstack_servers) -> None:
    _, web = zstack_servers
    request = md.parse_request(f"/5/0/0/?c={C}&region=0,0,439,167&p=intmax|0:4")
    source = md.open_omero(web.url, 5, **OMERO_CREDS)
    before = web.state.counts["tiles"]
    with pytest.raises(RequestError, match="cannot project z planes"):
        md.render(source, request)
    assert web.state.counts["tiles"] == before


def test_a_projection_over_more_planes_than_the_read_budget_is_refused_before_any_read(
    tmp_path,
) -> None:
    """A store claiming 10^9 z planes: p=intmax over all of them read plane after plane
    for hours, deaf to SIGTERM; the planes now count in max_read_pixels."""
    import zarr

    group = zarr.open_group(str(tmp_path / "deep.zarr"), mode="w", zarr_format=2)
    group.create_array(
        "0", shape=(1, 1, 10**9, 512, 512), chunks=(1, 1, 1, 512, 512), dtype="uint16"
    )
    kinds = ["time", "channel", "space", "space", "space"]
    axes = [{"name": n, "type": t} for n, t in zip("tczyx", kinds, strict=True)]
    scale = [{"type": "scale", "scale": [1.0] * 5}]
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [{"path": "0", "coordinateTransformations": scale}],
        }
    ]
    source = md.open_image(tmp_path / "deep.zarr")
    request = md.parse_request("/0/0/0/?c=1|0:100$FF0000&region=0,0,512,512&p=intmax|0:999999999")
    with pytest.raises(RequestError, match=r"projecting 1,000,000,000 z planes reads 512 x 512"):
        md.render(source, request)
    small = md.parse_request("/0/0/0/?c=1|0:100$FF0000&region=0,0,512,512&p=intmax|0:3")
    assert md.render(source, small).compute().shape == (512, 512, 3)
