"""Shared fixtures: sample data, generated pyramids, loopback servers (HTTP, moto S3)."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "Passw0rd!x"
TINY, CIRCLES, HOLEY = "0f9a-tiny", "7c1d-circles", "5e2b-holey"
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


@pytest.fixture(scope="session")
def minerva(moto_server, tiny_data, tiny_ome_tiff, shared_data):
    """The Minerva cloud on loopback: a moto Cognito pool and S3 bucket with published
    images, and the emulating API Gateway. Yields its settings and handles."""
    from types import SimpleNamespace

    import tifffile

    from tests.servers.minerva import MinervaApi, MinervaWorld, publish_image

    boto3 = pytest.importorskip("boto3")
    pytest.importorskip("pycognito")
    idp = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=moto_server)
    pool = idp.create_user_pool(PoolName="minerva-test", UsernameAttributes=["email"])
    pool_id = pool["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(UserPoolId=pool_id, ClientName="web-client")[
        "UserPoolClient"
    ]["ClientId"]
    secret = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="secret-client", GenerateSecret=True
    )["UserPoolClient"]
    for user in ("alice@example.org", "newbie@example.org"):
        idp.admin_create_user(
            UserPoolId=pool_id,
            Username=user,
            MessageAction="SUPPRESS",
            TemporaryPassword="Temp0rary!x",
            UserAttributes=[{"Name": "email", "Value": user}],
        )
    idp.admin_set_user_password(
        UserPoolId=pool_id, Username="alice@example.org", Password=PASSWORD, Permanent=True
    )
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    s3.create_bucket(Bucket="minerva-tiles")
    with tifffile.TiffFile(tiny_ome_tiff) as tif:
        tiny_xml = tif.ome_metadata
    circles_path = shared_data / "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif"
    with tifffile.TiffFile(circles_path) as tif:
        circles_xml, circles = tif.ome_metadata, tif.series[0].levels[0].asarray()
    levels = {
        TINY: publish_image(s3, "minerva-tiles", TINY, "bfu-tiny", tiny_data, tiny_xml),
        CIRCLES: publish_image(s3, "minerva-tiles", CIRCLES, "bfu-circles", circles, circles_xml),
        HOLEY: publish_image(s3, "minerva-tiles", HOLEY, "bfu-holey", tiny_data, tiny_xml),
    }
    s3.delete_object(Bucket="minerva-tiles", Key=f"{HOLEY}/C2-T0-Z0-L0-Y0-X1.png")
    images = {
        uuid: {
            "name": f"image {uuid}",
            "bfu_uuid": f"bfu-{uuid.split('-')[1]}",
            "pyramid_levels": len(levels[uuid]),
        }
        for uuid in levels
    }
    world = MinervaWorld(
        moto_server, pool_id, client_id, "minerva-tiles", images, other_clients={secret["ClientId"]}
    )
    with MinervaApi(world, s3) as api:
        settings = dict(
            api_url=api.url,
            user_pool_id=pool_id,
            client_id=client_id,
            region="us-east-1",
            username="alice@example.org",
            password=PASSWORD,
            cognito_endpoint_url=moto_server,
            s3_endpoint_url=moto_server,
            initial_delay_s=0.001,
            max_retries=2,
        )
        yield SimpleNamespace(
            api=api,
            world=world,
            settings=settings,
            levels=levels,
            idp=idp,
            s3=s3,
            secret=secret,
            endpoint=moto_server,
            circles=circles_path,
        )


@pytest.fixture
def minerva_environment(minerva, monkeypatch):
    """MINERVA_* and AWS endpoint variables pointing at the loopback Minerva cloud, as a
    user of the CLI would export them."""
    settings = minerva.settings
    variables = {
        "MINERVA_API_URL": settings["api_url"],
        "MINERVA_USER_POOL_ID": settings["user_pool_id"],
        "MINERVA_CLIENT_ID": settings["client_id"],
        "MINERVA_USERNAME": settings["username"],
        "MINERVA_PASSWORD": settings["password"],
        "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": minerva.endpoint,
        "AWS_ENDPOINT_URL_S3": minerva.endpoint,
    }
    for key, value in variables.items():
        monkeypatch.setenv(key, value)
    return variables


@pytest.fixture(scope="session")
def cluster_client():
    """A distributed LocalCluster with worker processes (2 x 2 threads), shared by the
    tests that only need one; a test that harms its cluster makes its own. Not dask's
    default scheduler: only computations handed this client run on it."""
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            dashboard_address=None,
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client
