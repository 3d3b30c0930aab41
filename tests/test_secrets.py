"""No secret leaves: distinct secrets planted in every credential input, renders that
succeed and fail at -q, default and -vv, and everything the process printed, raised or
wrote is searched for them."""

from __future__ import annotations

import contextlib
import shutil
import traceback
from pathlib import Path

import pytest

import minerva_dask as md
from minerva_dask.cli import main
from tests.conftest import TINY
from tests.servers.omero import OmeroServer, ServedImage
from tests.servers.static import StaticServer

pytestmark = pytest.mark.slow  # every source and the CLI, with planted secrets

PLANTED = {
    "omero_password": "pw-Zq81-omero-secret",
    "omero_url_password": "pw-Xu72-url-secret",
    "figure_url_password": "pw-Fg30-figure-secret",
    "image_url_password": "pw-Kd55-image-secret",
    "omero_cookie": "ck-Ty90-cookie-secret",
    "wrong_password": "pw-Wr17-wrong-secret",
    "aws_key_id": "AKIAPLANTEDKEY123456",
    "aws_secret": "sk-Mn44-aws-secret",
    "sts_key_id": "ASIAPLANTEDSTS123456",
    "sts_secret": "sts-Rv63-sts-secret",
}
VERBOSITY = (["-q"], [], ["-v", "-v"])
SMALL = "c=1|0:30000$FF0000,2|0:30000$00FF00&region=0,0,64,64&max_size=64"


@pytest.fixture(scope="module")
def sample(shared_data) -> Path:
    return shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif"


@pytest.fixture(scope="module")
def omero(sample):
    images = {1: ServedImage.from_tiff(str(sample))}
    users = {
        "alice": PLANTED["omero_password"],
        "urluser": PLANTED["omero_url_password"],
        "bob": PLANTED["figure_url_password"],
    }
    with OmeroServer(images, users=users) as server:
        yield server


def _with_password(url: str, user: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


class Record:
    """Everything a run could leak through: stdout, stderr, exception texts, files."""

    def __init__(self, root: Path) -> None:
        self.root, self.texts = root, []

    def run(self, capsys, argv: list[str]) -> int:
        code = main(argv)
        captured = capsys.readouterr()
        self.texts += [captured.out, captured.err]
        return code

    def api(self, call) -> None:
        try:
            call()
        except Exception as exc:
            self.texts.append("".join(traceback.format_exception(exc)))
            self.texts.append(repr(exc))

    def leaks(self, secrets: list[str]) -> list[str]:
        found = [s for s in secrets for text in self.texts if s in text]
        for path in self.root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                found += [f"{s} in {path}" for s in secrets if s.encode() in data]
        return sorted(set(found))


def test_omero_credentials_never_leave(omero, sample, tmp_path, monkeypatch, capsys) -> None:
    record = Record(tmp_path)
    for name in ("OMERO_SESSION", "OME_COOKIE", "OMERO_USERNAME", "OMERO_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    server_with_password = _with_password(omero.url, "urluser", PLANTED["omero_url_password"])
    figure_url = (
        _with_password(omero.url, "bob", PLANTED["figure_url_password"])
        + f"/figure/render_scaled_region/1/0/0/?{SMALL}"
    )
    outputs = iter(range(1000))
    for verbosity in VERBOSITY:

        def out(suffix: str = ".png") -> str:
            return str(tmp_path / f"out{next(outputs)}{suffix}")

        monkeypatch.setenv("OMERO_USERNAME", "alice")
        monkeypatch.setenv("OMERO_PASSWORD", PLANTED["omero_password"])
        request = f"/1/0/0/?{SMALL}"
        assert (
            record.run(capsys, ["crop", request, "--omero", omero.url, "-o", out(), *verbosity])
            == 0
        )
        assert (
            record.run(
                capsys,
                [
                    "crop",
                    request,
                    "--omero",
                    server_with_password,
                    "-o",
                    out(".ome.tif"),
                    *verbosity,
                ],
            )
            == 0
        )
        assert record.run(capsys, ["crop", figure_url, "-o", out(".ome.zarr"), *verbosity]) == 0
        monkeypatch.setenv("OMERO_PASSWORD", PLANTED["wrong_password"])
        assert (
            record.run(capsys, ["crop", request, "--omero", omero.url, "-o", out(), *verbosity])
            == 2
        )
        monkeypatch.delenv("OMERO_USERNAME")
        monkeypatch.delenv("OMERO_PASSWORD")
        monkeypatch.setenv("OMERO_SESSION", omero.login_key())
        assert (
            record.run(capsys, ["crop", request, "--omero", omero.url, "-o", out(), *verbosity])
            == 0
        )
        monkeypatch.delenv("OMERO_SESSION")
        monkeypatch.setenv("OME_COOKIE", f"sessionid={PLANTED['omero_cookie']}")
        assert (
            record.run(capsys, ["crop", request, "--omero", omero.url, "-o", out(), *verbosity])
            == 2
        )
        monkeypatch.delenv("OME_COOKIE")
    record.api(
        lambda: md.open_omero(
            server_with_password, 1, username="alice", password=PLANTED["wrong_password"]
        )
    )
    record.api(lambda: md.open_omero(omero.url, 1, cookie=f"sessionid={PLANTED['omero_cookie']}"))
    server_secrets = [*omero.state.omero_sessions, *omero.state.web_sessions]
    server_secrets += list(omero.state.csrf_tokens)
    assert server_secrets, "the server issued no session to look for"
    assert record.leaks([*PLANTED.values(), *server_secrets]) == []


def test_file_url_and_aws_credentials_never_leave(
    sample, moto_server, tmp_path, monkeypatch, capsys
) -> None:
    import boto3

    folder = tmp_path / "served"
    folder.mkdir()
    shutil.copy(sample, folder / "sample.ome.tif")
    s3 = boto3.client("s3", region_name="us-east-1", endpoint_url=moto_server)
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="secrets-test")
    s3.upload_file(str(sample), "secrets-test", "sample.ome.tif")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", PLANTED["aws_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", PLANTED["aws_secret"])
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    record = Record(outputs)
    request = f"/0/0/0/?{SMALL}"
    with StaticServer(str(folder)) as url:
        image = _with_password(url, "carol", PLANTED["image_url_password"])
        for i, verbosity in enumerate(VERBOSITY):
            for name, ref, expected in (
                ("http", f"{image}/sample.ome.tif", 0),
                ("http-missing", f"{image}/missing.ome.tif", 2),
                ("s3", "s3://secrets-test/sample.ome.tif", 0),
                ("s3-missing", "s3://secrets-test/missing.ome.tif", 2),
            ):
                argv = ["crop", request, "--image", ref, "-o", str(outputs / f"{name}{i}.png")]
                assert record.run(capsys, [*argv, *verbosity]) == expected, record.texts[-1]
        record.api(lambda: md.crop(request, outputs / "api.png", image=f"{image}/missing.ome.tif"))
    assert record.leaks(list(PLANTED.values())) == []


def test_minerva_tokens_and_keys_never_leave(
    minerva, minerva_environment, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setattr(minerva.world, "sts_keys", (PLANTED["sts_key_id"], PLANTED["sts_secret"]))
    record = Record(tmp_path)
    request = "/0/0/0/?c=1|0:30000$FF0000&region=0,0,256,256&max_size=256"
    for i, verbosity in enumerate(VERBOSITY):
        out = str(tmp_path / f"m{i}.png")
        assert record.run(capsys, ["crop", request, "--minerva", TINY, "-o", out, *verbosity]) == 0
        missing = ["crop", request, "--minerva", "0000-missing", "-o", out, *verbosity]
        assert record.run(capsys, missing) == 2
    leaks = record.leaks([*PLANTED.values(), minerva.settings["password"]])
    jwts = [text for text in record.texts if "eyJ" in text]  # Cognito tokens are JWTs
    assert leaks == [] and jwts == []


@pytest.mark.parametrize(
    ("text", "hidden", "kept"),
    [
        ("http://h/x.zarr?X-Goog-Signature=G00g&X-Goog-Credential=Cr3d", ["G00g", "Cr3d"], []),
        ("https://cdn/x.tif?Key-Pair-Id=KP1d&Policy=P0l&Signature=S1g", ["KP1d", "P0l", "S1g"], []),
        ("http://h/x?auth=Au7h&sig=S1gg&region=0,0,5,5", ["Au7h", "S1gg"], ["region=0,0,5,5"]),
        ('{"AccessKeyId": "AKID", "SessionToken": "T0k"}', ["AKID", "T0k"], []),
        ("Authorization: AWS4-HMAC-SHA256 Credential=abc", ["AWS4-HMAC-SHA256"], []),
        ("SignificantBits=17 keyframe=3 max_size=2000", [], ["SignificantBits=17", "max_size"]),
    ],
)
def test_credential_shaped_parts_are_masked_and_ordinary_fields_kept(text, hidden, kept) -> None:
    from minerva_dask._redact import redact

    out = redact(text)
    assert not [h for h in hidden if h in out], out
    assert all(k in out for k in kept), out
