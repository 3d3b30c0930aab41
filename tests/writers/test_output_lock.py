"""One export of an output at a time: a second export (or resume) of the same output is
refused at once, in one line, and the first one's output is whole (never a mix of two
renders); a killed holder leaves no lock behind; a partial folder removed mid-export is one
clear error.

The races are made certain rather than likely: the first export (the CLI, in a
subprocess) is stopped with SIGSTOP once it holds the lock and its work has begun, the
second runs to its end, then the first is let go on.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import minerva_dask as md
from minerva_dask.exports import to_dzi, to_ome_zarr
from minerva_dask.writers._atomic import output_lock

from .test_dzi_safety import pyramid_hash

pytestmark = pytest.mark.slow  # real processes, full-size exports of the demo image

A = "/0/0/0/?c=1|600:24000$0000FF&region=0,0,4096,3072&max_size=4096"
B = "/0/0/0/?c=3|500:20000$FF0000&region=0,0,4096,3072&max_size=4096"


def _cli_run(*args: str) -> subprocess.CompletedProcess:
    from tests.test_data_safety import _cli, _env

    return subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True, timeout=300)


def _holder(target: Path) -> int | None:
    """The process id in ``target``'s lock file, once one is written there."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        return int((target.parent / f".{target.name}.lock").read_text().split()[0])
    return None


@contextlib.contextmanager
def stopped_export(args: list[str], target: Path, started: str):
    """The CLI export ``args``, stopped (SIGSTOP) once it holds ``target``'s lock and
    ``started`` (a name in the folder) exists; let go on (SIGCONT) when the block ends.
    Yields the process; its ``result`` is set once it has finished."""
    from tests.test_data_safety import _cli, _env

    process = subprocess.Popen(
        _cli(*args), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while _holder(target) != process.pid or not (target.parent / started).exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.002)
        process.send_signal(signal.SIGSTOP)
        yield process
        process.send_signal(signal.SIGCONT)
        out, err = process.communicate(timeout=300)
        process.result = subprocess.CompletedProcess(process.args, process.returncode, out, err)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
            process.wait()


def _zarr_levels(path: Path) -> list[np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    return [group[str(level)][...] for level in range(len(list(group.array_keys())))]


def _same_output(got: Path, want: Path) -> None:
    if got.suffix == ".dzi":
        assert pyramid_hash(got) == pyramid_hash(want)
        return
    got_levels, want_levels = _zarr_levels(got), _zarr_levels(want)
    assert len(got_levels) == len(want_levels) > 1
    for a, b in zip(got_levels, want_levels, strict=True):
        np.testing.assert_array_equal(a, b)


def _refused(result: subprocess.CompletedProcess, target: Path, pid: int) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"minerva-dask: error: another minerva-dask export is writing {target} "
        f"(process {pid}); wait for it, or choose another output\n"
    )


@pytest.mark.parametrize("name", ["out.dzi", "out.ome.zarr"])
def test_a_second_export_of_one_output_is_refused_and_the_first_is_whole(tmp_path, demo_path, name):
    solo = tmp_path / "solo"
    solo.mkdir()
    want = _cli_run("crop", A, "--image", str(demo_path), "-o", str(solo / name), "-q")
    assert want.returncode == 0, want.stderr
    target = tmp_path / name
    md.crop(B, target, image=demo_path)  # an old output: both exports would replace it
    first = ["crop", A, "--image", str(demo_path), "-o", str(target), "--overwrite", "-q"]
    with stopped_export(first, target, f".{name}.partial") as winner:
        for extra in (["--overwrite"], ["--resume"], ["--overwrite", "--resume"], []):
            second = _cli_run("crop", B, "--image", str(demo_path), "-o", str(target), "-q", *extra)
            _refused(second, target, winner.pid)
        # the loser touched nothing: the winner's partial folder is still the only one
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == [
            f".{name}.lock",
            f".{name}.partial",
        ]
    assert winner.result.returncode == 0, winner.result.stderr
    _same_output(target, solo / name)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # lock gone


@pytest.mark.parametrize("name", ["out.png", "out.ome.tif"])
def test_a_second_export_of_one_file_is_refused_too(tmp_path, demo_path, name):
    target = tmp_path / name
    first = ["crop", A, "--image", str(demo_path), "-o", str(target), "-q"]
    with stopped_export(first, target, f".{name}.lock") as winner:
        second = _cli_run(
            "crop", B, "--image", str(demo_path), "-o", str(target), "--overwrite", "-q"
        )
        _refused(second, target, winner.pid)
    assert winner.result.returncode == 0, winner.result.stderr
    assert target.stat().st_size > 0
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("name", ["out.dzi", "out.ome.zarr"])
def test_kill_9_of_the_holder_leaves_no_lock(tmp_path, demo_path, name):
    target = tmp_path / name
    first = ["crop", A, "--image", str(demo_path), "-o", str(target), "-q"]
    with stopped_export(first, target, f".{name}.partial") as holder:
        holder.kill()
        holder.wait()
    assert holder.result.returncode == -signal.SIGKILL
    # the small lock file may stay (nobody could remove it); the lock itself is gone
    assert (tmp_path / f".{name}.lock").exists()
    resumed = _cli_run("crop", A, "--image", str(demo_path), "-o", str(target), "--resume", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    again = _cli_run("crop", A, "--image", str(demo_path), "-o", str(target), "--overwrite")
    assert again.returncode == 0, again.stderr


def test_the_lock_conflicts_within_one_process_and_is_removed_when_released(tmp_path):
    target = tmp_path / "x.ome.zarr"  # a folder not yet made: the lock is beside it
    with output_lock(target):
        assert int((tmp_path / ".x.ome.zarr.lock").read_text()) == os.getpid()
        refused = pytest.raises(md.OutputError, match=rf"another .* \(process {os.getpid()}\)")
        with refused, output_lock(target):
            pass
    assert list(tmp_path.iterdir()) == []
    with output_lock(target):  # taken again at once
        pass
    refused = pytest.raises(md.OutputError, match=r"folder .* does not exist")
    with refused, output_lock(tmp_path / "missing" / "x.png"):
        pass


class _RemovingSource:
    """Wraps a source; the first read at y >= at_y removes ``victim`` (someone deleting
    an export's partial folder while it runs)."""

    def __init__(self, source, at_y: int, victim: Path) -> None:
        self.inner, self.at_y, self.victim = source, at_y, victim
        self.info = source.info

    def __dask_tokenize__(self):
        return self.inner.__dask_tokenize__()

    def channels_per_read(self, level):
        return self.inner.channels_per_read(level)

    def read_region(self, level, rect, channels, *, z=0, t=0):
        if rect.y >= self.at_y and self.victim.exists():
            shutil.rmtree(self.victim, ignore_errors=True)
        return self.inner.read_region(level, rect, channels, z=z, t=t)

    def close(self) -> None:
        pass


@pytest.mark.parametrize("name", ["t.dzi", "t.ome.zarr"])
def test_a_partial_folder_removed_mid_export_is_one_clear_error(tiny_ome_tiff, tmp_path, name):
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request("/0/0/0/?c=1|500:20000$0000FF&region=0,0,1100,700&max_size=5000")
    target = tmp_path / name
    removing = _RemovingSource(source, 400, tmp_path / f".{name}.partial")
    rendering = md.render(removing, request, align="output", chunk_size=128)
    write = to_dzi if name.endswith(".dzi") else to_ome_zarr
    with pytest.raises(md.OutputError, match="was removed or replaced during the export"):
        write(rendering, target)
    assert not target.exists()  # nothing put in place
    assert not (tmp_path / ".t.dzi.lock").exists() and not (tmp_path / ".t.ome.zarr.lock").exists()


@pytest.mark.parametrize("planted", ["symlink", "dangling symlink", "hard link", "fifo"])
def test_a_planted_lock_file_is_refused_and_what_it_names_untouched(tmp_path, planted) -> None:
    precious = tmp_path / "precious.txt"
    precious.write_text("precious data")
    lock = tmp_path / ".out.png.lock"
    if planted == "symlink":
        lock.symlink_to(precious)
    elif planted == "dangling symlink":
        lock.symlink_to(tmp_path / "created-by-the-attacker")
    elif planted == "hard link":
        os.link(precious, lock)
    else:
        os.mkfifo(lock)
    with (
        pytest.raises(md.OutputError, match="lock file") as info,
        output_lock(tmp_path / "out.png"),
    ):
        pass
    assert str(info.value).count("\n") == 0
    assert precious.read_text() == "precious data"
    assert not (tmp_path / "created-by-the-attacker").exists()
    assert os.path.lexists(lock)  # left for the user to look at and remove
