"""Every failure a user can cause or meet: one line on stderr, exit 2, no traceback,
within its time, and in the user's terms. Run as users run it: the console entry point
in a subprocess."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.servers.static import PlainServer

pytestmark = pytest.mark.slow  # the CLI as a subprocess, once per failure

SMALL = "/0/0/0/?c=1|0:30000$FF0000&region=0,0,64,64&max_size=64"


@dataclass(frozen=True)
class Case:
    """argv after ``minerva-dask``; words the one line must hold; seconds allowed."""

    name: str
    argv: Callable[[dict[str, str]], list[str]]
    says: tuple[str, ...]
    within_s: float = 20.0
    env: Callable[[dict[str, str]], dict[str, str | None]] | None = None


def _sample(ctx: dict[str, str]) -> str:
    return ctx["sample"]


CASES = [
    Case(
        "OME-Zarr to a read-only http:// URL",
        lambda c: ["crop", SMALL, "--image", _sample(c), "-o", "http://127.0.0.1:1/o.ome.zarr"],
        ("cannot write http://127.0.0.1:1/o.ome.zarr", "read-only", "s3://"),
    ),
    Case(
        "local cluster of -1 workers",
        lambda c: ["crop", SMALL, "--image", _sample(c), "-o", c["zarr"], "--local-cluster", "-1"],
        ("--local-cluster", ">= 1"),
    ),
    Case(
        "local cluster of 0 workers",
        lambda c: ["crop", SMALL, "--image", _sample(c), "-o", c["zarr"], "--local-cluster", "0"],
        ("--local-cluster",),
    ),
    Case(
        "memory limit that is not a size",
        lambda c: [
            "crop",
            SMALL,
            "--image",
            _sample(c),
            "-o",
            c["zarr"],
            "--local-cluster",
            "1",
            "--memory-limit",
            "lots",
        ],
        ("--memory-limit", "lots"),
    ),
    Case(
        "scheduler address that is not one",
        lambda c: ["crop", SMALL, "--image", _sample(c), "-o", c["png"], "--scheduler", "bogus"],
        ("--scheduler", "bogus"),
    ),
    Case(
        "scheduler nobody listens at",
        lambda c: [
            "crop",
            SMALL,
            "--image",
            _sample(c),
            "-o",
            c["png"],
            "--scheduler",
            "tcp://127.0.0.1:1",
        ],
        ("cannot reach the dask scheduler", "tcp://127.0.0.1:1"),
        within_s=14.0,
    ),
    Case(
        "maps nested 50,000 deep",
        lambda c: [
            "crop",
            SMALL + "&maps=" + "[" * 50_000 + "]" * 50_000,
            "--image",
            _sample(c),
            "-o",
            c["png"],
        ],
        ("maps", "nested"),
    ),
    Case(
        "gamma that is infinite",
        lambda c: ["crop", SMALL, "--image", _sample(c), "-o", c["png"], "--gamma", "inf"],
        ("gamma", "finite"),
    ),
    Case(
        "gamma that is not a number",
        lambda c: ["crop", SMALL, "--image", _sample(c), "-o", c["png"], "--gamma", "nan"],
        ("gamma",),
    ),
    Case(
        "window beyond float64",
        lambda c: [
            "crop",
            SMALL.replace("0:30000", "0:1e400"),
            "--image",
            _sample(c),
            "-o",
            c["png"],
        ],
        ("window end", "finite"),
    ),
    Case(
        "output over the pixel budget (OMERO.figure's level rule may exceed max_size)",
        lambda c: [
            "crop",
            SMALL.replace("0,0,64,64", "0,0,1e12,1e12"),
            "--image",
            _sample(c),
            "-o",
            c["png"],
            "--omero-compatible",
        ],
        ("budget", "--max-pixels"),
        within_s=15.0,
    ),
    Case(
        "s3 without AWS credentials",
        lambda c: ["crop", SMALL, "--image", "s3://no-such-bucket/x.ome.tif", "-o", c["png"]],
        ("AWS credentials", "anon=true"),
        env=lambda c: {
            "AWS_ACCESS_KEY_ID": None,
            "AWS_SECRET_ACCESS_KEY": None,
            "AWS_SESSION_TOKEN": None,
            "AWS_PROFILE": None,
            "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
            "AWS_CONFIG_FILE": "/nonexistent",
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_ENDPOINT_URL_S3": c["moto"],
        },
    ),
    Case(
        "s3 endpoint that cannot be reached",
        lambda c: ["crop", SMALL, "--image", "s3://bucket/x.ome.tif", "-o", c["png"]],
        ("cannot reach", "127.0.0.1:1"),
        within_s=30.0,
        env=lambda c: {
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
            "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:1",
        },
    ),
    Case(
        "OME-TIFF over an HTTP server without Range support, over the whole-file limit",
        lambda c: [
            "crop",
            SMALL,
            "--image",
            c["no_range"] + "/tiled.ome.tif",
            "-o",
            c["png"],
            "--storage-option",
            "whole_file_max_bytes=100000",  # the file is 0.8 MB
        ],
        ("does not support HTTP Range", "whole_file_max_bytes"),
    ),
    Case(
        "nothing at an HTTP URL",
        lambda c: ["crop", SMALL, "--image", c["no_range"] + "/missing.ome.tif", "-o", c["png"]],
        ("nothing found",),
    ),
    Case(
        "OME-Zarr whose level scale is 0",
        lambda c: ["crop", SMALL, "--image", c["zarr_scale_0"], "-o", c["png"]],
        ("scale",),
    ),
    Case(
        "OME-Zarr whose dataset path climbs out with ..",
        lambda c: ["crop", SMALL, "--image", c["zarr_dotdot"], "-o", c["png"]],
        ("path",),
    ),
    Case(
        "OME-Zarr of strings",
        lambda c: ["crop", SMALL, "--image", c["zarr_strings"], "-o", c["png"]],
        ("dtype",),
    ),
    Case(
        "OME-Zarr whose attributes are a list, not an object",
        lambda c: ["crop", SMALL, "--image", c["zarr_list_attrs"], "-o", c["png"]],
        ("cannot open", "as zarr"),
    ),
    Case(
        "imgdata with SignificantBits=100000",
        lambda c: ["imgdata", c["bits_xml"], "--image-id", "0"],
        ("SignificantBits",),
    ),
    Case(
        "imgdata of a file that is not XML",
        lambda c: ["imgdata", _sample(c), "--image-id", "0"],
        ("XML",),
    ),
]


@pytest.fixture(scope="module")
def context(tmp_path_factory, shared_data, moto_server):
    folder = tmp_path_factory.mktemp("failures")
    served = folder / "served"
    served.mkdir()
    sample = shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif"
    shutil.copy(sample, served / "sample.ome.tif")  # small: fetched whole, it still renders
    shutil.copy(shared_data / "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff", served / "tiled.ome.tif")
    zarrs = _bad_zarrs(folder, shared_data / "ome-zarr/blobs_image_v05.ome.zarr")
    xml = (shared_data / "ome-xml/from-colon-2ch.ome.xml").read_text()
    bits = folder / "bits.ome.xml"
    bits.write_text(xml.replace('SignificantBits="8"', 'SignificantBits="100000"'))
    with PlainServer(str(served)) as server:
        yield {
            "sample": str(sample),
            "no_range": server.url,
            "moto": moto_server,
            "bits_xml": str(bits),
            **zarrs,
        }


def _bad_zarrs(folder: Path, good: Path) -> dict[str, str]:
    """Copies of a good OME-Zarr with one piece of metadata made nonsense each."""
    import json

    import numpy as np
    import zarr

    out = {}

    def edited(name: str, change: Callable[[dict], None]) -> Path:
        copy = folder / f"{name}.ome.zarr"
        shutil.copytree(good, copy)
        meta = json.loads((copy / "zarr.json").read_text())
        change(meta["attributes"]["ome"]["multiscales"][0])
        (copy / "zarr.json").write_text(json.dumps(meta))
        out[name] = str(copy)
        return copy

    def scale_0(ms: dict) -> None:
        ms["datasets"][0]["coordinateTransformations"][0]["scale"] = [1.0, 0.0, 1.0]

    def dot_dot(ms: dict) -> None:
        ms["datasets"][0]["path"] = "../../escape"

    edited("zarr_scale_0", scale_0)
    listed = edited("zarr_list_attrs", lambda ms: None)
    meta = json.loads((listed / "zarr.json").read_text())
    meta["attributes"] = []
    (listed / "zarr.json").write_text(json.dumps(meta))
    edited("zarr_dotdot", dot_dot)
    strings = edited("zarr_strings", lambda ms: None)
    shutil.rmtree(strings / "0")
    zarr.create_array(
        str(strings / "0"), shape=(1, 8, 8), dtype=np.dtypes.StringDType(), chunks=(1, 8, 8)
    )
    return out


def run_cli(argv: list[str], env: dict[str, str | None] | None = None) -> tuple[int, str, float]:
    environment = os.environ.copy()
    for key, value in (env or {}).items():
        if value is None:
            environment.pop(key, None)
        else:
            environment[key] = value
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "minerva_dask.cli", *argv, "-q"]
        if argv[0] == "crop"
        else [sys.executable, "-m", "minerva_dask.cli", *argv],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )
    return result.returncode, result.stderr, time.monotonic() - started


def test_a_region_outside_the_image_warns_in_one_line(context, tmp_path) -> None:
    request = SMALL.replace("0,0,64,64", "1000,1000,64,64")
    code, err, _ = run_cli(
        ["crop", request, "--image", context["sample"], "-o", str(tmp_path / "o.png")]
    )
    assert code == 0
    assert err.strip().splitlines() == [
        "minerva-dask: warning: region 1000,1000,64,64 does not overlap the image (64 x 64 "
        "px): the output is all background"
    ]


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_failure_is_one_clear_line_and_exit_2(case: Case, context, tmp_path) -> None:
    context = dict(context, png=str(tmp_path / "out.png"), zarr=str(tmp_path / "out.ome.zarr"))
    env = case.env(context) if case.env else None
    code, err, elapsed = run_cli(case.argv(context), env)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1, err
    assert lines[0].startswith("minerva-dask: error: "), err
    assert "Traceback" not in err
    for words in case.says:
        assert words.lower() in lines[0].lower(), lines[0]
    assert elapsed < case.within_s, f"took {elapsed:.1f} s"
    assert not Path(context["png"]).exists() and not Path(context["zarr"]).exists()
