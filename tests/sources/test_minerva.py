"""The Minerva source: Cognito on moto, tiles on moto S3, the emulating API Gateway."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask.cli import main
from tests.conftest import CIRCLES, HOLEY, PASSWORD, TINY
from tests.reference import render_reference
from tests.servers.minerva import render_tile_maths
from tests.sources.contract import unpickled

pytestmark = pytest.mark.slow  # Cognito and S3 on moto, the emulating API

REQUEST = (
    "/0/0/0/?c=1|500:20000$0000FF,-2|0:8000$00FF00,3|300:9000$FF8000"
    "&region=-150,-80,1400,900&max_size={max_size}"
)


@pytest.fixture
def world(minerva):
    """The gateway's switches, reset after each test."""
    yield minerva.world
    minerva.world.credentials, minerva.world.max_token_age_s = True, None
    minerva.world.credentials_lifetime_s = 3600.0


def open_source(minerva, uuid=TINY, **changes):
    return md.open_minerva(uuid, **{**minerva.settings, **changes})


def test_sign_in_metadata_and_levels(minerva, tiny_ome_tiff) -> None:
    source = open_source(minerva)
    info, local = source.info, md.open_image(tiny_ome_tiff).info
    assert [(lv.width, lv.height) for lv in info.levels] == [(1100, 700), (550, 350)]
    assert [c.name for c in info.channels] == [c.name for c in local.channels]
    assert info.dtype == np.dtype("uint16") and info.pixel_size_um == local.pixel_size_um
    assert source._connection().credential_fetches == 1  # temporary S3 credentials


@pytest.mark.parametrize("uuid", [TINY, CIRCLES])
def test_raw_tiles_render_exactly_like_the_source_ome_tiff(minerva, tiny_ome_tiff, uuid) -> None:
    local = md.open_image(tiny_ome_tiff if uuid == TINY else minerva.circles)
    request = md.parse_request(REQUEST.format(max_size=5000))
    expected = md.render(local, request).compute()
    np.testing.assert_array_equal(
        md.render(open_source(minerva, uuid), request).compute(), expected
    )


def test_lower_levels_render_what_was_published(minerva) -> None:
    request = md.parse_request(REQUEST.format(max_size=700))
    rendering = md.render(open_source(minerva), request, background="omero")
    assert rendering.level == 1
    level1 = minerva.levels[TINY][1]
    expected = render_reference(
        level1[[0, 2]],
        (1100 / 550, 700 / 350),
        (-150, -80, 1400, 900),
        [(500, 20000), (300, 9000)],
        [(0, 0, 1), (1, 128 / 255, 0)],
        background=(221, 221, 221),
    )
    np.testing.assert_array_equal(rendering.compute(), expected)


def test_render_tile_fallback_equals_the_servers_lossy_maths(minerva) -> None:
    request = md.parse_request(
        "/0/0/0/?c=1|500:20000$0000FF,3|300:9000$FF8000&region=-100,0,1300,700&max_size=5000"
    )
    got = md.render(open_source(minerva, mode="render-tile"), request).compute()
    level0 = minerva.levels[TINY][0]
    specs = [
        (np.array([0, 0, 1.0]), 500 / 65535, 20000 / 65535),
        (np.array([1.0, 0x80 / 255, 0]), 300 / 65535, 9000 / 65535),
    ]
    rendered = render_tile_maths([level0[0], level0[2]], specs)
    expected = np.zeros((700, 1300, 3), np.uint8)
    expected[:, 100:1200] = rendered  # black padding left and right
    np.testing.assert_array_equal(got, expected)
    with pytest.raises(md.RequestError, match="minerva-render-tile maths"):
        md.render(open_source(minerva, mode="render-tile"), request, gamma=1.5)


def test_an_expired_token_is_refreshed_and_the_render_completes(minerva, world) -> None:
    source = open_source(minerva, mode="render-tile")
    world.max_token_age_s = 2.0  # iat is in whole seconds: leave a fresh token a second's slack
    before = world.counts["expired"]
    time.sleep(2.2)
    request = md.parse_request("/0/0/0/?c=1|0:65535$FFFFFF&region=0,0,1100,700&max_size=5000")
    assert md.render(source, request).compute().shape == (700, 1100, 3)
    assert world.counts["expired"] > before
    assert source._connection().cognito.refreshes >= 1


def test_tokens_are_refreshed_before_they_expire(minerva) -> None:
    from minerva_dask.sources._cognito import CognitoConfig, CognitoSession

    settings = minerva.settings
    config = CognitoConfig(
        settings["user_pool_id"],
        settings["client_id"],
        "us-east-1",
        endpoint_url=minerva.endpoint,
        refresh_margin_s=3601,
    )
    session = CognitoSession(config, "alice@example.org", PASSWORD)
    session.id_token()
    session.id_token()
    assert session.refreshes == 2 and session.sign_ins == 1
    assert "Passw0rd" not in repr(session)


def test_s3_credentials_are_refreshed_when_they_expire(minerva, world) -> None:
    world.credentials_lifetime_s = 300.3  # renewed 300 s before expiry: after 0.3 s here
    source = open_source(minerva)
    time.sleep(0.4)
    md.render(source, md.parse_request(REQUEST.format(max_size=5000))).compute()
    assert source._connection().credential_fetches >= 2


def test_without_api_credentials_the_users_own_aws_keys_are_used(minerva, world) -> None:
    world.credentials = False
    source = open_source(minerva, bucket="minerva-tiles")
    assert source._connection().credential_fetches == 0
    request = md.parse_request(REQUEST.format(max_size=300))
    assert md.render(source, request).compute().shape[2] == 3
    with pytest.raises(md.SourceError, match="set MINERVA_BUCKET"):
        open_source(minerva, uuid=CIRCLES)


def test_a_missing_tile_fails_naming_it(minerva) -> None:
    source = open_source(minerva, uuid=HOLEY)
    with pytest.raises(md.TileReadError, match=r"tile C2-T0-Z0-L0-Y0-X1 .* is missing"):
        md.render(source, md.parse_request(REQUEST.format(max_size=5000))).compute()


def test_wrong_password_is_refused(minerva) -> None:
    """moto does not check passwords under SRP (api-contract.md 7): the USER_PASSWORD_AUTH
    path, where moto does check them, carries the refusal through our error handling."""
    with pytest.raises(md.AuthError, match="incorrect username or password") as info:
        open_source(minerva, password="wr0ng-Secret", auth_flow="USER_PASSWORD_AUTH")
    assert "wr0ng-Secret" not in str(info.value)
    with pytest.raises(md.AuthError, match="incorrect username or password"):
        open_source(minerva, username="nobody@example.org")  # under SRP: unknown user


def test_a_temporary_password_asks_for_a_new_one(minerva) -> None:
    with pytest.raises(md.AuthError, match="set a new password first"):
        open_source(minerva, username="newbie@example.org", password="Temp0rary!x")


def test_missing_settings_name_the_variables(minerva, monkeypatch) -> None:
    monkeypatch.setenv("MINERVA_DASK_CONFIG", "/nonexistent/config.toml")
    for name in ("MINERVA_USERNAME", "MINERVA_PASSWORD", "MINERVA_API_URL"):
        monkeypatch.delenv(name, raising=False)
    settings = {**minerva.settings, "username": None}
    with pytest.raises(md.AuthError, match="must have MINERVA_USERNAME in environ"):
        md.open_minerva(TINY, **settings)
    with pytest.raises(md.SourceError, match=r"api_url \(MINERVA_API_URL\)"):
        md.open_minerva(TINY, **{**minerva.settings, "api_url": None})


def test_unknown_image_and_bad_tokens(minerva) -> None:
    import requests

    with pytest.raises(md.SourceNotFoundError, match="Minerva image nope not found"):
        open_source(minerva, uuid="nope")
    url = f"{minerva.api.url}/image/{TINY}"
    assert requests.get(url).json() == {"message": "Unauthorized"}
    assert requests.get(url, headers={"Authorization": "x.y.z"}).status_code == 401
    token = open_source(minerva)._connection().cognito.id_token()
    assert requests.get(url, headers={"Authorization": token}).status_code == 200
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_an_app_client_with_a_secret(minerva) -> None:
    source = open_source(
        minerva, client_id=minerva.secret["ClientId"], client_secret=minerva.secret["ClientSecret"]
    )
    assert source.info.size_c == 3


def test_pickles_without_secrets_in_its_repr(minerva) -> None:
    source = open_source(minerva)
    assert PASSWORD not in repr(source)
    clone = unpickled(source)  # signs in for itself, as a worker would
    request = md.parse_request(REQUEST.format(max_size=300))
    np.testing.assert_array_equal(
        md.render(clone, request).compute(), md.render(source, request).compute()
    )


def test_cli_crop_with_minerva_settings_from_the_environment(
    minerva_environment, tiny_ome_tiff, tmp_path
) -> None:
    request = REQUEST.format(max_size=5000)  # level 0: the OME-TIFF's pyramid differs below
    assert main(["crop", request, "--minerva", TINY, "-o", str(tmp_path / "m.png"), "-q"]) == 0
    expected = md.render(md.open_image(tiny_ome_tiff), md.parse_request(request)).compute()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "m.png")), expected)
