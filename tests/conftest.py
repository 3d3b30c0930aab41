"""Shared fixtures: sample data, generated pyramids, loopback servers (HTTP, moto S3)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MINERVA_DASK_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``: real sample images. .ci/run fails before tests if it is missing."""
    if not (SHARED_DATA / "PROVENANCE.md").exists():
        pytest.skip(f"sample data not found at {SHARED_DATA} (set MINERVA_DASK_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def demo_path(_isolated_cache: Path) -> Path:
    from minerva_dask._demo import demo_image_path

    return demo_image_path()


@pytest.fixture(scope="session")
def tiny_data() -> np.ndarray:
    """(3, 700, 1100) uint16 tissue: odd, non-square sizes that do not divide by tiles."""
    from minerva_dask._demo import synthetic_tissue

    return synthetic_tissue(1100, 700, channels=3, seed=7)


@pytest.fixture(scope="session")
def tiny_ome_tiff(tmp_path_factory: pytest.TempPathFactory, tiny_data: np.ndarray) -> Path:
    from minerva_dask._demo import write_ome_tiff_pyramid

    path = tmp_path_factory.mktemp("tiff") / "tiny.ome.tif"
    return write_ome_tiff_pyramid(
        path, tiny_data, tile=256, min_side=128, channel_names=("DNA", "Membrane", "Keratin")
    )


@pytest.fixture(scope="session", params=["0.5", "0.4"])
def tiny_ome_zarr(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_data: np.ndarray
) -> Path:
    from minerva_dask._demo import write_ome_zarr_pyramid

    path = tmp_path_factory.mktemp("zarr") / f"tiny-{request.param}.ome.zarr"
    return write_ome_zarr_pyramid(
        path,
        tiny_data,
        chunk=200,
        version=request.param,
        min_side=64,
        channel_names=("DNA", "Membrane", "Keratin"),
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    """A moto server (S3, Cognito...) on 127.0.0.1; yields its endpoint URL.

    Sets dummy AWS credentials and region in the environment for the session.
    """
    server_module = pytest.importorskip("moto.server")
    port = _free_port()
    server = server_module.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    saved = {
        k: os.environ.get(k)
        for k in (
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
            "AWS_SESSION_TOKEN",
        )
    }
    os.environ.update(
        AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1"
    )
    os.environ.pop("AWS_SESSION_TOKEN", None)
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
