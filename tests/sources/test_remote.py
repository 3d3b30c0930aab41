"""Sources over fsspec URLs: s3:// on a moto server and http:// on a local server."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.sources.base import channels_per_read
from tests.reference import independent_pyramid
from tests.servers.static import StaticServer
from tests.sources.contract import unpickled

REQUEST = "/0/0/0/?c=1|500:20000$0000FF,3|300:9000$FF0000&region=-50,20,1000,600&max_size=400"


def _upload_tree(fs, local: Path, remote: str) -> None:
    if local.is_dir():
        for path in sorted(local.rglob("*")):
            if path.is_file():
                fs.pipe(f"{remote}/{path.relative_to(local).as_posix()}", path.read_bytes())
    else:
        fs.pipe(remote, local.read_bytes())


@pytest.fixture(scope="module")
def s3(moto_server):
    s3fs = pytest.importorskip("s3fs")
    fs = s3fs.S3FileSystem(
        client_kwargs={"endpoint_url": moto_server}, anon=False, skip_instance_cache=True
    )
    fs.makedirs("slides", exist_ok=True)
    return fs, {"client_kwargs": {"endpoint_url": moto_server}, "skip_instance_cache": True}


@pytest.fixture(scope="module")
def s3_images(s3, tiny_ome_tiff, tiny_ome_zarr):
    fs, options = s3
    _upload_tree(fs, tiny_ome_tiff, "slides/tiny.ome.tif")
    _upload_tree(fs, tiny_ome_zarr, f"slides/{tiny_ome_zarr.name}")
    return options


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_s3_render_equals_the_local_render(s3_images, tiny_ome_tiff, tiny_ome_zarr, kind) -> None:
    local = tiny_ome_tiff if kind == "tiff" else tiny_ome_zarr
    url = f"s3://slides/{local.name}"
    remote = md.open_image(url, storage_options=s3_images)
    request = md.parse_request(REQUEST)
    expected = md.render(md.open_image(local), request).compute()
    np.testing.assert_array_equal(md.render(remote, request).compute(), expected)
    assert remote.info.size_c == 3
    clone = unpickled(remote)  # reads with its own handle, as a worker would
    np.testing.assert_array_equal(md.render(clone, request).compute(), expected)


@pytest.mark.slow
def test_s3_missing_object_is_named(s3_images) -> None:
    with pytest.raises(md.SourceNotFoundError, match=re.escape("s3://slides/absent.ome.tif")):
        md.open_image("s3://slides/absent.ome.tif", storage_options=s3_images)
    with pytest.raises(md.SourceNotFoundError, match="no-such-bucket"):
        md.open_image("s3://no-such-bucket/x.ome.zarr", storage_options=s3_images)


@pytest.fixture(scope="module")
def http_root(shared_data, tiny_ome_tiff, tiny_ome_zarr, tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "tiny.ome.tif").write_bytes(tiny_ome_tiff.read_bytes())
    import shutil

    shutil.copytree(tiny_ome_zarr, root / tiny_ome_zarr.name)
    shutil.copytree(
        shared_data / "ome-zarr/exemplar-001.crop.image.ome.zarr", root / "exemplar.ome.zarr"
    )
    server = StaticServer(str(root))
    with server as url:
        yield url, server


@pytest.mark.parametrize("name", ["tiny.ome.tif", "tiny-zarr", "exemplar.ome.zarr"])
def test_http_render_equals_the_local_render(
    http_root, tiny_ome_tiff, tiny_ome_zarr, shared_data, name
) -> None:
    url, _server = http_root
    local = {
        "tiny.ome.tif": tiny_ome_tiff,
        "tiny-zarr": tiny_ome_zarr,
        "exemplar.ome.zarr": shared_data / "ome-zarr/exemplar-001.crop.image.ome.zarr",
    }[name]
    remote_name = tiny_ome_zarr.name if name == "tiny-zarr" else name
    remote = md.open_image(f"{url}/{remote_name}")
    levels, _ = independent_pyramid(local)
    assert remote.info.levels[0].width == levels[0].shape[2]
    request = md.parse_request("/0/0/0/?c=1|0:30000$FFFFFF&region=-10,-10,300,200&max_size=10000")
    np.testing.assert_array_equal(
        md.render(remote, request).compute(), md.render(md.open_image(local), request).compute()
    )


def test_http_reads_only_ranges_of_a_tiff(http_root, tiny_ome_tiff) -> None:
    """A 256^2 crop of a 4 MB TIFF moves a fraction of it: about 1 MB, mostly the 64 kB
    blocks around every page's directory that tifffile reads at open (fsspec's size probe,
    a GET it aborts after the headers, carries no range and is left aside)."""
    url, server = http_root
    server.httpd.requests_seen.clear()
    remote = md.open_image(f"{url}/tiny.ome.tif", storage_options={"block_size": 65536})
    md.render(remote, md.parse_request("/0/0/0/?c=1&region=0,0,256,256&max_size=10000")).compute()
    spans = [
        span for path, span in server.httpd.requests_seen if path.endswith("tiny.ome.tif") and span
    ]
    assert spans
    moved = sum(
        int(end) - int(start) + 1
        for start, end in (span[len("bytes=") :].split("-") for span in spans)
    )
    assert moved < tiny_ome_tiff.stat().st_size / 2


def test_http_missing_file_is_named(http_root) -> None:
    url, _ = http_root
    with pytest.raises(md.SourceNotFoundError, match=re.escape("absent.ome.tif")):
        md.open_image(f"{url}/absent.ome.tif")
    with pytest.raises(md.SourceNotFoundError, match=re.escape("absent.ome.zarr")):
        md.open_image(f"{url}/absent.ome.zarr")


def test_unreachable_server_is_a_clear_error() -> None:
    with pytest.raises(md.SourceError, match=re.escape("127.0.0.1:9")):
        md.open_image("http://127.0.0.1:9/slide.ome.tif")


@pytest.fixture
def slow_http(tiny_ome_tiff, tmp_path):
    (tmp_path / "tiny.ome.tif").write_bytes(tiny_ome_tiff.read_bytes())
    server = StaticServer(str(tmp_path))
    with server as url:
        yield url, server.httpd


@pytest.mark.slow
def test_remote_tiff_tiles_are_fetched_many_at_once(slow_http, tiny_ome_tiff) -> None:
    url, httpd = slow_http
    remote = md.open_image(f"{url}/tiny.ome.tif")
    assert remote.io_concurrency >= 8  # threads the threaded scheduler gets for it
    # a chunk fetches all its channels in one batch (locally: one channel at a time)
    assert channels_per_read(remote, 0) is None
    assert channels_per_read(md.open_image(tiny_ome_tiff), 0) == 1
    httpd.delay_s = 0.1  # 100 ms a range: latency is hidden only by requests in flight
    request = md.parse_request("/0/0/0/?c=1,2,3&region=0,0,1024,512&max_size=10000")
    got = md.render(remote, request, chunk_size=256).compute()  # 8 chunks x 3 channels
    # 8 chunk tasks at once, ideally (one shared, locked file handle served one range at
    # a time before; the CI machine has 2 cores)
    assert httpd.peak_active >= 4
    expected = md.render(md.open_image(tiny_ome_tiff), request, chunk_size=256).compute()
    np.testing.assert_array_equal(got, expected)


def test_short_remote_reads_are_retried(slow_http, tiny_ome_tiff) -> None:
    url, httpd = slow_http
    remote = md.open_image(f"{url}/tiny.ome.tif")
    httpd.short_reads = 2  # the next two range answers hold half the bytes
    request = md.parse_request("/0/0/0/?c=2&region=256,0,256,256&max_size=10000")
    got = md.render(remote, request).compute()
    assert httpd.short_reads == 0
    expected = md.render(md.open_image(tiny_ome_tiff), request).compute()
    np.testing.assert_array_equal(got, expected)


def test_a_remote_folder_or_bucket_root_is_one_clear_error() -> None:
    """``s3://`` or a remote folder where an image file was expected: the format cannot be
    read from it, said as such (s3fs raised ValueError, fsspec IsADirectoryError)."""
    import fsspec

    from minerva_dask.errors import SourceError
    from minerva_dask.sources import guess_format

    memory = fsspec.filesystem("memory")
    memory.mkdir("/md-folder")
    memory.pipe("/md-folder/a.txt", b"x")
    for ref in ("memory://md-folder", "memory://"):
        with pytest.raises(SourceError, match="is a folder, not an image file"):
            guess_format(ref)
