"""TLS to OMERO: verified by default, --insecure honoured whatever the environment says,
and no credential follows a URL the server advertises on another scheme or host."""

from __future__ import annotations

import pytest

from minerva_dask.cli import main
from tests.servers import self_signed_certificate, server_tls_context
from tests.servers.omero import OmeroServer, ServedImage

pytestmark = pytest.mark.slow  # TLS servers and certificates

REQUEST = "/1/0/0/?c=1|0:30000$FF0000&region=0,0,64,64&max_size=64"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    return self_signed_certificate(str(tmp_path_factory.mktemp("tls")))


@pytest.fixture(scope="module")
def images(shared_data):
    return {1: ServedImage.from_tiff(str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif"))}


@pytest.fixture
def login(monkeypatch):
    monkeypatch.setenv("OMERO_USERNAME", "alice")
    monkeypatch.setenv("OMERO_PASSWORD", "wonderland")
    for name in ("OMERO_SESSION", "OME_COOKIE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)


def crop(server_url: str, out, *extra: str) -> int:
    return main(["crop", REQUEST, "--omero", server_url, "-o", str(out), *extra])


def test_self_signed_server_is_refused_with_a_certificate_message(
    images, certificate, login, tmp_path, capsys
) -> None:
    with OmeroServer(images, tls=server_tls_context(*certificate)) as server:
        assert server.url.startswith("https://")
        code = crop(server.url, tmp_path / "out.png")
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1
    assert "certificate" in err.lower() and "--insecure" in err
    assert not (tmp_path / "out.png").exists()


@pytest.mark.parametrize("variable", ["REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"])
def test_insecure_holds_when_a_ca_bundle_variable_is_set(
    images, certificate, login, tmp_path, monkeypatch, capsys, variable
) -> None:
    import certifi

    monkeypatch.setenv(variable, certifi.where())  # a bundle that does not know our server
    with OmeroServer(images, tls=server_tls_context(*certificate)) as server:
        refused = crop(server.url, tmp_path / "refused.png", "-q")
        insecure = crop(server.url, tmp_path / "insecure.png", "-q", "--insecure")
    assert refused == 2 and "certificate" in capsys.readouterr().err.lower()
    assert insecure == 0
    assert (tmp_path / "insecure.png").stat().st_size > 0


def test_a_trusted_ca_bundle_verifies_the_server(
    images, certificate, login, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", certificate[0])
    with OmeroServer(images, tls=server_tls_context(*certificate)) as server:
        assert crop(server.url, tmp_path / "out.png", "-q") == 0


def test_https_index_advertising_http_is_refused_and_no_password_goes_in_clear(
    images, certificate, login, tmp_path, capsys
) -> None:
    """A TLS-terminating proxy without X-Forwarded-Proto makes OMERO advertise http://
    URLs in /api/; following them would POST the password in clear."""
    with (
        OmeroServer(images) as plain,
        OmeroServer(images, tls=server_tls_context(*certificate)) as server,
    ):
        server.state.advertised_base = plain.url  # "http://127.0.0.1:PORT"
        code = crop(server.url, tmp_path / "out.png", "--insecure")
        plain_requests = plain.state.counts["requests"]
        plain_passwords = list(plain.state.seen_passwords)
        tls_passwords = list(server.state.seen_passwords)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert (
        lines[0] == f"minerva-dask: warning: TLS certificate verification is off for {server.url}"
    )
    assert len(lines) == 2 and lines[1].startswith("minerva-dask: error: ")
    assert "refusing to send credentials" in lines[1]
    err = "\n".join(lines)
    assert plain_requests == 0 and plain_passwords == []
    assert tls_passwords == []  # nothing was posted anywhere
    assert "wonderland" not in err


def test_a_refused_plain_connection_is_retried_and_not_called_a_certificate_problem() -> None:
    """aiohttp names the TLS setting of every connection it fails to make (``ssl:default``
    even for http://): that alone is no certificate problem, and a refusal is retried."""
    aiohttp = pytest.importorskip("aiohttp")
    from aiohttp.client_reqrep import ConnectionKey

    from minerva_dask.sources._http import describe_network_error, is_transient

    key = ConnectionKey("127.0.0.1", 1, False, True, None, None, None)
    refused = ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 1)")
    exc = aiohttp.ClientConnectorError(key, refused)
    assert "ssl:" in str(exc)
    assert describe_network_error(exc).startswith("connection refused")
    assert is_transient(exc)
