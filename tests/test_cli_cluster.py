"""A cluster as users run one: ``dask scheduler`` and two ``dask worker`` processes (the
real command lines, on 127.0.0.1), and ``minerva-dask crop --scheduler`` in a subprocess.
A worker killed mid-export leaves pixels identical to a threaded run; ``-q`` prints
nothing; ``-v`` names the dashboard."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.writers.test_export import zarr_levels

DASK = str(Path(sys.executable).with_name("dask"))
# the whole 4096 x 3072 demo image at full resolution, 2 channels: 12 + 4 + 1 chunks
REQUEST = "/0/0/0/?c=1|600:24000$0000FF,3|700:15000$FF0000&region=0,0,4096,3072&max_size=4096"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, within_s: float) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens at 127.0.0.1:{port}")


@pytest.fixture
def cli_cluster(tmp_path):
    """``dask scheduler`` + two ``dask worker --no-nanny`` (so SIGKILL kills the worker
    itself, not a nanny that would restart it); yields (address, dashboard port, pids)."""
    port, dashboard = _free_port(), _free_port()
    scheduler = [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port)]
    scheduler += ["--dashboard-address", f"127.0.0.1:{dashboard}"]
    address = f"tcp://127.0.0.1:{port}"
    worker = [DASK, "worker", address, "--host", "127.0.0.1", "--nthreads", "1"]
    worker += ["--no-nanny", "--no-dashboard", "--memory-limit", "1GB"]
    env = dict(os.environ)  # the workers import minerva_dask as this process does
    logs = open(tmp_path / "cluster.log", "w")  # noqa: SIM115 (closed in the finally)
    procs: list[subprocess.Popen] = []
    try:
        procs.append(subprocess.Popen(scheduler, env=env, stdout=logs, stderr=logs))
        _wait_for_port(port, 30)
        for _ in range(2):
            procs.append(subprocess.Popen(worker, env=env, stdout=logs, stderr=logs))
        _wait_for_workers(address, 2)
        yield address, dashboard, [p.pid for p in procs[1:]]
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logs.close()


def _wait_for_workers(address: str, count: int) -> None:
    distributed = pytest.importorskip("distributed")
    with distributed.Client(address, timeout=30) as client:
        client.wait_for_workers(count, timeout=60)


def _crop(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "minerva_dask.cli", "crop", REQUEST, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
def test_a_worker_killed_mid_export_on_a_cli_cluster_leaves_the_threaded_pixels(
    cli_cluster, demo_path, tmp_path
) -> None:
    address, dashboard, workers = cli_cluster
    image = ["--image", str(demo_path)]
    threaded = _crop(*image, "-o", str(tmp_path / "threads.ome.zarr"), "-q")
    assert threaded.wait(timeout=120) == 0, threaded.stderr.read()
    # unsharded: 17 objects, each one task, so a kill lands between many of them
    out = tmp_path / "cluster.ome.zarr"
    crop = _crop(*image, "-o", str(out), "--shard", "1", "--scheduler", address, "-q")
    markers = tmp_path / ".cluster.ome.zarr.partial" / ".minerva-dask" / "0"
    deadline = time.monotonic() + 60
    while not (markers.is_dir() and any(markers.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not out.exists() and crop.poll() is None  # mid-export: some chunks written
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = crop.communicate(timeout=180)
    assert crop.returncode == 0, stderr
    assert stdout == "" and stderr == ""  # -q: not a line of distributed's
    for got, want in zip(zarr_levels(out), zarr_levels(tmp_path / "threads.ome.zarr"), strict=True):
        np.testing.assert_array_equal(got, want)
    started = time.monotonic()
    verbose = _crop(*image, "-o", str(tmp_path / "v.ome.zarr"), "--scheduler", address, "-v")
    _, stderr = verbose.communicate(timeout=120)
    took = time.monotonic() - started
    assert verbose.returncode == 0, stderr
    assert f"dask dashboard: http://127.0.0.1:{dashboard}/status" in stderr
    # progress: the first line estimates nothing yet or something sane, never 100x the job
    progress = [line for line in stderr.splitlines() if line.startswith("OME-Zarr: ")]
    assert progress and "done in" in progress[-1], stderr
    for line in progress[:-1]:
        left = line.rsplit(", ", 1)[1]
        assert left == "estimating time left" or float(left.split()[0]) < 10 * took, line
