"""We read every writer's files (issue 15, inputs): pyramids written here by ome-zarr-py,
ngff-zarr, tifffile, pyvips and a bioformats2raw layout, in uint8, uint16, int16 and float32,
render at three levels exactly like the reference renderer over the levels the writer
stored (read with tifffile or zarr directly), and read the same over HTTP with and without
Range and over S3."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

import minerva_dask as md
from minerva_dask.geometry import Rect
from minerva_dask.request import ChannelSetting, RenderRequest
from tests.reference import block_mean_level, independent_pyramid, render_reference
from tests.servers.static import PlainServer, StaticServer

pytestmark = [
    pytest.mark.slow,  # other writers' pyramids, S3
    pytest.mark.filterwarnings(  # ngff-zarr's default downsampler, not ours
        "ignore:Setting the shape on a NumPy array:DeprecationWarning:itkwasm"
    ),
]

DTYPES = [np.uint8, np.uint16, np.int16, np.float32]
SIZE = (131, 67)  # (width, height): odd, and no side divides by a tile or chunk
OTHER_SIZE = (97, 150)  # one more odd size, uint16 only
COLOURS = [(1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
TILE = 16


def _data(dtype, size) -> np.ndarray:
    """(3, height, width) noise over the dtype's range (float32: -3..5), so a window over
    the data's min and max means something."""
    width, height = size
    rng = np.random.default_rng(15)
    if np.dtype(dtype).kind == "f":
        return rng.uniform(-3, 5, (3, height, width)).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (3, height, width), dtype=dtype, endpoint=True)


def _halves(cyx: np.ndarray, count: int) -> list[np.ndarray]:
    levels = [cyx]
    for _ in range(count - 1):
        levels.append(block_mean_level(levels[-1], 2))
    return levels


# ---------------------------------------------------------------- the writers


def _ome_zarr_py(path: Path, data: np.ndarray, version: str, *, b2r: bool = False) -> Path:
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.writer import write_image

    fmt = FormatV04() if version == "0.4" else FormatV05()
    root = zarr.open_group(path, mode="w", zarr_format=2 if version == "0.4" else 3)
    group = root
    if b2r:  # bioformats2raw: the root names the layout, series "0" is the image
        root.attrs["bioformats2raw.layout"] = 3
        group = root.create_group("0")
    write_image(
        data,
        group,
        scale_factors=(2, 4),
        axes="cyx",
        fmt=fmt,
        storage_options={"chunks": (1, 32, 32)},
    )
    return path


def _ngff_zarr(path: Path, data: np.ndarray, version: str, shards: int | None = None) -> Path:
    import ngff_zarr as nz

    image = nz.to_ngff_image(data, dims=["c", "y", "x"])
    multiscales = nz.to_multiscales(image, scale_factors=[2, 4], chunks=32)
    nz.to_ngff_zarr(path, multiscales, version=version, chunks_per_shard=shards)
    return path


def _tiff_subifds(path: Path, data: np.ndarray) -> Path:
    levels = _halves(data, 3)
    with tifffile.TiffWriter(path, ome=True) as writer:
        common = {"tile": (TILE, TILE), "photometric": "minisblack"}
        writer.write(levels[0], subifds=2, metadata={"axes": "CYX"}, **common)
        for level in levels[1:]:
            writer.write(level, subfiletype=1, **common)
    return path


def _tiff_series_per_level(path: Path, data: np.ndarray) -> Path:
    with tifffile.TiffWriter(path, ome=True) as writer:
        for level in _halves(data, 3):
            writer.write(
                level,
                tile=(TILE, TILE),
                photometric="minisblack",
                metadata={"axes": "CYX"},
            )
    return path


def _pyvips(path: Path, data: np.ndarray, *, subifd: bool = False) -> Path:
    """pyvips' pyramid: levels as pages (its default) or as SubIFDs; the three channels
    interleaved as samples, in any of the four dtypes."""
    pyvips = pytest.importorskip("pyvips")
    image = pyvips.Image.new_from_array(np.ascontiguousarray(np.moveaxis(data, 0, -1)))
    image.tiffsave(
        str(path), pyramid=True, tile=True, tile_width=TILE, tile_height=TILE, subifd=subifd
    )
    return path


WRITERS = {
    "ome-zarr-py-0.4": lambda p, d: _ome_zarr_py(p / "img.ome.zarr", d, "0.4"),
    "ome-zarr-py-0.5": lambda p, d: _ome_zarr_py(p / "img.ome.zarr", d, "0.5"),
    "ngff-zarr-0.4": lambda p, d: _ngff_zarr(p / "img.ome.zarr", d, "0.4"),
    "ngff-zarr-0.5": lambda p, d: _ngff_zarr(p / "img.ome.zarr", d, "0.5"),
    "ngff-zarr-0.5-sharded": lambda p, d: _ngff_zarr(p / "img.ome.zarr", d, "0.5", shards=2),
    "tifffile-subifds": lambda p, d: _tiff_subifds(p / "img.ome.tif", d),
    "tifffile-series-per-level": lambda p, d: _tiff_series_per_level(p / "img.ome.tif", d),
    "pyvips-pages": lambda p, d: _pyvips(p / "img.tif", d),
    "pyvips-subifds": lambda p, d: _pyvips(p / "img.tif", d, subifd=True),
    "bioformats2raw": lambda p, d: _ome_zarr_py(p / "img.zarr", d, "0.4", b2r=True),
}

CASES = [(w, np.dtype(t).name, SIZE) for w in WRITERS for t in DTYPES] + [
    (w, "uint16", OTHER_SIZE) for w in WRITERS
]


def _stored_levels(path: Path, writer: str):
    """The levels as stored, read by tifffile or zarr directly, with their factors."""
    if writer != "tifffile-series-per-level":
        return independent_pyramid(path)
    with tifffile.TiffFile(path) as tif:  # tifffile sees one series per level
        stored = [series.asarray() for series in tif.series]
    full = stored[0].shape
    return stored, [(full[2] / a.shape[2], full[1] / a.shape[1]) for a in stored]


def _request(data: np.ndarray, region) -> tuple[RenderRequest, list[tuple[float, float]]]:
    windows = [(float(c.min()), float(c.max())) for c in data]
    settings = tuple(ChannelSetting(index=c, window=windows[c], color=COLOURS[c]) for c in range(3))
    return RenderRequest(channels=settings, region=region, max_size=4096), windows


@pytest.mark.parametrize(
    ("writer", "dtype", "size"),
    CASES,
    ids=[f"{w}-{t}-{s[0]}x{s[1]}" for w, t, s in CASES],
)
def test_each_writers_pyramid_renders_three_levels_like_the_reference(
    tmp_path, writer, dtype, size
) -> None:
    data = _data(dtype, size)
    path = WRITERS[writer](tmp_path, data)
    stored, downsamples = _stored_levels(path, writer)  # the writer's own levels
    assert len(stored) >= 3, f"{writer} wrote {len(stored)} levels"
    np.testing.assert_array_equal(stored[0], data)  # the writer kept level 0 as given
    source = md.open_image(path)
    assert source.info.size_c == 3
    assert [(lv.width, lv.height) for lv in source.info.levels[:3]] == [
        (a.shape[2], a.shape[1]) for a in stored[:3]
    ]
    width, height = size
    region = (-7, 5, width + 3, height - 2)  # past the left and bottom edges
    request, windows = _request(data, region)
    for level in range(3):
        rendering = md.render(source, request, level=level)
        assert rendering.level == level
        expected = render_reference(stored[level], downsamples[level], region, windows, COLOURS)
        got = rendering.compute(scheduler="threads")
        assert got.max() > got.min()  # the windows over the data's range show something
        np.testing.assert_array_equal(got, expected, err_msg=f"{writer} level {level}")


# ---------------------------------------------------------------- remote reads


# All ranges of a chunk go out together (135 tiles for level 0 here), one connection
# each on these HTTP/1.0 servers; http.server's listen backlog of 5 drops most of them and
# the retries' backoff then takes tens of seconds. A real server's backlog is larger.
BACKLOG = 256


@pytest.fixture(scope="module")
def remote_inputs(tmp_path_factory):
    """One TIFF and one OME-Zarr (not sharded), as the writers left them."""
    folder = tmp_path_factory.mktemp("interop-remote")
    data = _data(np.uint16, SIZE)
    tiff = _tiff_subifds(folder / "img.ome.tif", data)
    zarr_path = _ome_zarr_py(folder / "img.ome.zarr", data, "0.5")
    return folder, {"tiff": tiff.name, "zarr": zarr_path.name}, data


def _assert_reads_like_local(remote, local) -> None:
    assert remote.info.levels == local.info.levels
    for level, spec in enumerate(local.info.levels[:3]):
        rect = Rect(3, 2, spec.width - 4, spec.height - 3)
        np.testing.assert_array_equal(
            remote.read_region(level, rect, [0, 1, 2]),
            local.read_region(level, rect, [0, 1, 2]),
            err_msg=f"level {level}",
        )


@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_http_with_range_reads_like_the_local_file(remote_inputs, kind) -> None:
    folder, names, _ = remote_inputs
    local = md.open_image(folder / names[kind])
    server = StaticServer(str(folder))
    server.httpd.socket.listen(BACKLOG)
    with server as url:
        _assert_reads_like_local(md.open_image(f"{url}/{names[kind]}"), local)


@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_http_without_range_reads_like_the_local_file(remote_inputs, kind) -> None:
    folder, names, _ = remote_inputs
    local = md.open_image(folder / names[kind])
    server = PlainServer(str(folder), BACKLOG)
    log = server.requests
    with server:
        _assert_reads_like_local(md.open_image(f"{server.url}/{names[kind]}"), local)
    if kind == "zarr":  # whole chunk objects: no range asked at all
        assert all(r is None for _, r in log), log
    else:  # one probe of a single byte, then the whole file once
        probe = log.index(("GET", "bytes=1-1"))
        assert log[probe + 1 :] == [("GET", None)], log


@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_s3_reads_like_the_local_file(remote_inputs, moto_server, kind) -> None:
    s3fs = pytest.importorskip("s3fs")
    folder, names, _ = remote_inputs
    options = {"client_kwargs": {"endpoint_url": moto_server}, "skip_instance_cache": True}
    fs = s3fs.S3FileSystem(anon=False, **options)
    fs.makedirs("interop", exist_ok=True)
    local_path = folder / names[kind]
    if local_path.is_dir():
        for path in sorted(local_path.rglob("*")):
            if path.is_file():
                rel = path.relative_to(folder).as_posix()
                fs.pipe(f"interop/{kind}/{rel}", path.read_bytes())
    else:
        fs.pipe(f"interop/{kind}/{names[kind]}", local_path.read_bytes())
    remote = md.open_image(f"s3://interop/{kind}/{names[kind]}", storage_options=options)
    _assert_reads_like_local(remote, md.open_image(local_path))


def test_the_remote_inputs_are_three_level_pyramids(remote_inputs) -> None:
    folder, names, data = remote_inputs
    for name in names.values():
        stored, _ = independent_pyramid(folder / name)
        levels = md.open_image(folder / name).info.levels
        assert len(stored) >= 3 and len(levels) == len(stored)
        sizes = [(a.shape[2], a.shape[1]) for a in stored]
        assert [(lv.width, lv.height) for lv in levels] == sizes
        np.testing.assert_array_equal(stored[0], data)
