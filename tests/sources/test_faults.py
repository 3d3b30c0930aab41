"""Network faults, per request: every network source survives transient trouble with
the same pixels as a fault-free run, and a slow or failing server is cut off in time.

Faults come from the emulating servers' switches (OMERO) or from a loopback proxy in
front of the static file server and moto's S3 (``tests/servers/proxy.py``)."""

from __future__ import annotations

import shutil
import time

import numpy as np
import pytest

import minerva_dask as md
from tests.conftest import TINY
from tests.servers.omero import OmeroServer, ServedImage
from tests.servers.proxy import FaultyProxy
from tests.servers.static import StaticServer

pytestmark = pytest.mark.slow  # fault injection with retries and deadlines

FAST = {"initial_delay_s": 0.001, "max_retries": 6}
REQUEST = (
    "/0/0/0/?c=1|500:20000$0000FF,2|0:8000$00FF00,3|300:9000$FF8000"
    "&region=-50,-30,1200,800&max_size=600"
)
THIRTY_PERCENT = {"error_rate": 0.15, "drop_rate": 0.1, "short_rate": 0.05}


def render(source) -> np.ndarray:
    return md.render(source, md.parse_request(REQUEST)).compute()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_ome_tiff, tiny_ome_zarr):
    folder = tmp_path_factory.mktemp("served")
    shutil.copy(tiny_ome_tiff, folder / "tiny.ome.tif")
    shutil.copytree(tiny_ome_zarr, folder / "tiny.ome.zarr")
    return folder


@pytest.fixture(scope="module")
def expected(tiny_ome_tiff) -> np.ndarray:
    return render(md.open_image(tiny_ome_tiff))


def test_a_single_503_on_a_tiff_range_read_is_retried(served, expected) -> None:
    with StaticServer(str(served)) as url, FaultyProxy(url) as proxy:
        source = md.open_image(f"{proxy.url}/tiny.ome.tif")  # opened without faults
        proxy.rates = (("error", 1.0),)  # then every range read answers 503 once
        proxy.max_consecutive = 1
        got = render(source)
    assert proxy.counts["faults"] > 0
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("name", ["tiny.ome.tif", "tiny.ome.zarr"])
def test_thirty_percent_faults_over_http_give_the_same_pixels(served, expected, name) -> None:
    with StaticServer(str(served)) as url, FaultyProxy(url, **THIRTY_PERCENT) as proxy:
        got = render(md.open_image(f"{proxy.url}/{name}"))
    assert proxy.counts["faults"] >= 3
    np.testing.assert_array_equal(got, expected)


def test_thirty_percent_faults_over_s3_give_the_same_pixels(
    moto_server, tiny_ome_tiff, expected, monkeypatch
) -> None:
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    s3.create_bucket(Bucket="faults")
    s3.upload_file(str(tiny_ome_tiff), "faults", "tiny.ome.tif")
    with FaultyProxy(moto_server, **THIRTY_PERCENT) as proxy:
        options = {"client_kwargs": {"endpoint_url": proxy.url}}
        got = render(md.open_image("s3://faults/tiny.ome.tif", storage_options=options))
    assert proxy.counts["faults"] >= 3
    np.testing.assert_array_equal(got, expected)


def test_thirty_percent_faults_on_minerva_give_the_same_pixels(minerva) -> None:
    settings = dict(minerva.settings, **FAST)
    expected = render(md.open_minerva(TINY, **settings))  # its pyramid is its own
    with (
        FaultyProxy(minerva.endpoint, **THIRTY_PERCENT, picks=lambda m, p, h: m == "GET") as s3,
        FaultyProxy(settings["api_url"], **THIRTY_PERCENT) as api,
    ):
        source = md.open_minerva(TINY, **dict(settings, s3_endpoint_url=s3.url, api_url=api.url))
        got = render(source)
    assert s3.counts["requests"] >= 6 and api.counts["requests"] >= 3  # both went through
    assert s3.counts["faults"] + api.counts["faults"] >= 1
    np.testing.assert_array_equal(got, expected)


@pytest.fixture(scope="module")
def omero_images(tiny_ome_tiff):
    return {1: ServedImage.from_tiff(str(tiny_ome_tiff))}


def test_thirty_percent_faults_on_omero_give_the_same_pixels(omero_images) -> None:
    login = {"username": "alice", "password": "wonderland", "tile_size": 128}
    with OmeroServer(omero_images, png=True) as clean:
        expected = render(md.open_omero(clean.url, 1, **login))
    with OmeroServer(omero_images, png=True) as server:
        server.faults.error_rate, server.faults.drop_rate = 0.15, 0.1
        server.faults.truncate_rate = 0.05
        got = render(md.open_omero(server.url, 1, **login, **FAST))
    assert server.state.counts["faults"] >= 3
    np.testing.assert_array_equal(got, expected)


def test_a_slow_loris_tile_is_cut_at_the_deadline_and_retried(omero_images) -> None:
    with OmeroServer(omero_images, png=True) as server:
        source = md.open_omero(
            server.url, 1, username="alice", password="wonderland", deadline_s=1.0, **FAST
        )
        expected = render(source)
        server.faults.trickle_tiles, server.faults.trickle_s = 2, 0.2  # a byte every 0.2 s
        started = time.monotonic()
        source.close()  # fresh connections: the trickled answers are the next tiles
        got = render(
            md.open_omero(
                server.url, 1, username="alice", password="wonderland", deadline_s=1.0, **FAST
            )
        )
        elapsed = time.monotonic() - started
    assert server.faults.trickle_tiles == 0  # both slow answers were met
    assert elapsed < 15  # each cut at about 1 s, not the minutes a trickle would take
    np.testing.assert_array_equal(got, expected)


def test_a_transient_401_is_retried_after_a_fresh_login(omero_images) -> None:
    with OmeroServer(omero_images, png=True) as server:
        server.faults.refuse_first = 1  # the very first request answers 401
        source = md.open_omero(server.url, 1, username="alice", password="wonderland", **FAST)
        assert source.info.size_c == 3
    with OmeroServer(omero_images, png=True) as server:
        source = md.open_omero(server.url, 1, username="alice", password="wonderland", **FAST)
        server.faults.refuse_first = server.state.counts["requests"] + 1  # the next one
        assert render(source).shape == (400, 600, 3)


def test_a_server_that_never_answers_is_given_up_on_within_the_total_time() -> None:
    import socket
    import threading

    from minerva_dask.errors import RemoteError
    from minerva_dask.sources._http import RetryPolicy, make_session, request_with_retries

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    accepted = []
    stop = threading.Event()

    def accept_and_say_nothing() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept_and_say_nothing, daemon=True)
    thread.start()
    policy = RetryPolicy(max_retries=50, initial_delay_s=0.01, timeout_s=0.3, total_s=1.5)
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/tile"
    started = time.monotonic()
    try:
        with pytest.raises(RemoteError, match=r"timed out.*no time left of the 1\.5 s"):
            request_with_retries(make_session(), "GET", url, what="a tile", policy=policy)
    finally:
        stop.set()
        thread.join()
        for connection in accepted:
            connection.close()
        listener.close()
    elapsed = time.monotonic() - started
    assert 1.0 < elapsed < 3.0  # the total, not 51 attempts of 0.3 s
    assert len(accepted) >= 3  # it did try again in between


def test_a_retry_after_longer_than_the_time_left_ends_in_a_clear_error() -> None:
    """A wait that uses the whole budget up (Retry-After, or a sleep that overruns on a
    busy machine) ends in "no time left", never in a negative socket timeout."""
    import http.server
    import threading

    from minerva_dask.errors import RemoteError
    from minerva_dask.sources._http import RetryPolicy, make_session, request_with_retries

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(503)
            self.send_header("Retry-After", "5")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    policy = RetryPolicy(max_retries=5, initial_delay_s=0.01, max_delay_s=2.0, total_s=0.5)
    started = time.monotonic()
    try:
        with pytest.raises(RemoteError, match=r"HTTP 503; no time left of the 0\.5 s"):
            request_with_retries(
                make_session(),
                "GET",
                f"http://127.0.0.1:{server.server_port}/",
                what="a tile",
                policy=policy,
            )
    finally:
        server.shutdown()
        server.server_close()
    assert time.monotonic() - started < 1.5  # Retry-After is cut to the time left


def test_a_refused_or_unknown_plain_http_host_is_not_called_a_certificate_failure() -> None:
    from minerva_dask.sources._http import describe_network_error

    # aiohttp says "ssl:default" of every connection it could not make, TLS or not
    refused = OSError("Cannot connect to host 127.0.0.1:1 ssl:default [Connect call failed]")
    unknown = OSError("Cannot connect to host x.invalid ssl:default [Name or service not known]")
    unreachable = OSError("Cannot connect to host 10.9.9.9:80 ssl:default [Network is unreachable]")
    assert describe_network_error(refused).startswith("connection refused")
    assert describe_network_error(unknown).startswith("unknown host")
    assert "certificate" not in describe_network_error(unreachable)
    bad_cert = OSError("Cannot connect to host x:443 ssl:True [SSLCertVerificationError]")
    assert describe_network_error(bad_cert).startswith("TLS certificate verification failed")
