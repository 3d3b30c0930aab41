"""Deep Zoom output keeps inputs and old outputs: atomic placing, resume, refusals, and
killed, stopped and full-disk exports (the CLI in a subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.exports import to_dzi
from tests.failing_source import FailingSource

from .test_dzi import read_dzi, tiles


def test_an_interrupted_dzi_export_leaves_the_old_pyramid_and_resumes(tiny_ome_tiff, tmp_path):
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request("/0/0/0/?c=1|500:20000$0000FF&region=0,0,1100,700&max_size=5000")
    target = tmp_path / "t.dzi"
    target.write_text("old")
    failing = md.render(FailingSource(source, 500), request, align="output", chunk_size=256)
    with pytest.raises(md.OutputError, match="exists"):
        to_dzi(failing, target)  # never replaced unasked
    with pytest.raises(OSError, match="the network went away"):
        to_dzi(failing, target, overwrite=True)
    assert target.read_text() == "old" and not (tmp_path / "t_files").exists()
    partial = tmp_path / ".t.dzi.partial"
    assert json.loads((partial / ".minerva-dask.json").read_text())["state"] == "in-progress"
    assert not (partial / "t.dzi").exists()  # the entry point is written last
    with pytest.raises(md.OutputError, match="exists"):
        to_dzi(failing, target)  # the old pyramid is still there, still not replaced unasked
    other = md.render(source, md.parse_request("/0/0/0/?c=1|0:100$0000FF&region=0,0,1100,700"))
    with pytest.raises(md.OutputError, match="another request"):
        to_dzi(other, target, resume=True)
    healthy = md.render(source, request, align="output", chunk_size=256)
    result = to_dzi(healthy, target, resume=True, tile_format="jpeg")
    assert read_dzi(target)["Width"] == 1100 and not partial.exists()
    assert result.chunks_written + result.chunks_skipped >= 2


def test_a_resumed_export_skips_blocks_already_written(tmp_path) -> None:
    rgb = np.random.default_rng(3).integers(0, 256, (600, 2100, 3), dtype=np.uint8)

    data = da.from_array(rgb, chunks=(1016, 1016, 3))
    first = to_dzi(data, tmp_path / "a.dzi", tile_format="png")
    assert first.chunks_skipped == 0 and first.chunks_written == 3 + 1
    # an interruption after the first stage: markers of the first stage stay
    partial = tmp_path / ".b.dzi.partial"
    from minerva_dask.writers import dzi

    calls = []
    real = dzi._next_level

    def stop(*args, **kwargs):
        calls.append(args)
        raise KeyboardInterrupt

    dzi._next_level = stop
    try:
        with pytest.raises(KeyboardInterrupt):
            to_dzi(data, tmp_path / "b.dzi", tile_format="png")
    finally:
        dzi._next_level = real
    assert partial.exists() and calls
    resumed = to_dzi(data, tmp_path / "b.dzi", tile_format="png", resume=True)
    assert (resumed.chunks_skipped, resumed.chunks_written) == (3, 1)
    assert tiles(tmp_path / "a_files") == tiles(tmp_path / "b_files")
    for name, _ in tiles(tmp_path / "a_files").items():
        assert (tmp_path / "a_files" / name).read_bytes() == (
            tmp_path / "b_files" / name
        ).read_bytes()


def test_dzi_options_and_outputs_are_checked_before_anything_is_written(tmp_path) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    for kwargs, match in (
        ({"tile_format": "webp"}, "jpeg or png"),
        ({"overlap": 200}, "overlap"),
        ({"tile_size": 0}, "tile size"),
        ({"quality": 101}, "quality"),
    ):
        with pytest.raises(md.OutputError, match=match):
            to_dzi(rgb, tmp_path / "x.dzi", **kwargs)
    (tmp_path / "y_files").write_text("a file")
    with pytest.raises(md.OutputError, match="not a folder"):
        to_dzi(rgb, tmp_path / "y.dzi")
    with pytest.raises(md.OutputError, match=r"ending in \.dzi"):
        to_dzi(rgb, tmp_path / "x.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y_files"]


# -- killed, stopped, full-disk exports keep the old pyramid (the CLI, in a subprocess) --


def pyramid_hash(target: Path) -> dict[str, str]:
    from tests.test_data_safety import tree_hash

    return {"dzi": tree_hash(target)["."]} | tree_hash(target.with_name(f"{target.stem}_files"))


@pytest.mark.slow
def test_kill_9_and_sigterm_during_a_dzi_overwrite_keep_the_old_pyramid(tmp_path, demo_path):
    from tests.test_data_safety import BIG, SMALL, _cli, _env, _start_and_kill, leftovers

    target = tmp_path / "o.dzi"
    md.crop(SMALL, target, image=demo_path)
    old = pyramid_hash(target)
    args = ["crop", BIG, "--image", str(demo_path), "-o", str(target), "--overwrite", "-q"]
    result = _start_and_kill(args, tmp_path, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL and pyramid_hash(target) == old
    # killed: nothing could clean up; the lock file stays, but no lock (the kernel let go)
    assert leftovers(tmp_path) == [".o.dzi.lock", ".o.dzi.partial"]
    shutil.rmtree(tmp_path / ".o.dzi.partial")
    result = _start_and_kill(args, tmp_path, signal.SIGTERM)
    assert result.returncode == 143, result.stderr
    assert pyramid_hash(target) == old and leftovers(tmp_path) == [".o.dzi.partial"]
    resumed = subprocess.run(
        _cli("crop", BIG, "--image", str(demo_path), "-o", str(target), "--resume", "-q"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert leftovers(tmp_path) == [] and read_dzi(target)["Width"] == 4096


@pytest.mark.slow
def test_a_full_disk_is_one_line_and_keeps_the_old_pyramid(tmp_path, demo_path) -> None:
    from tests.test_data_safety import BIG, SMALL, _cli, _env, leftovers, small_disk

    with small_disk(tmp_path / "disk") as disk:
        target = disk / "o.dzi"
        md.crop(SMALL, target, image=demo_path)
        old = pyramid_hash(target)
        args = ["crop", BIG, "--image", str(demo_path), "-o", str(target), "--overwrite", "-q"]
        result = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True)
        assert result.returncode == 2
        assert (
            result.stderr
            == f"minerva-dask: error: cannot write {target}: no space left on device\n"
        )
        assert pyramid_hash(target) == old and leftovers(disk) == []


def test_a_pipe_or_a_link_in_the_pyramid_s_place_is_refused(tmp_path, capsys) -> None:
    rgb = np.zeros((10, 10, 3), np.uint8)
    fifo = tmp_path / "p.dzi"
    os.mkfifo(fifo)
    with pytest.raises(md.OutputError, match="not a regular file"):
        to_dzi(rgb, fifo, overwrite=True)
    (tmp_path / "real").mkdir()
    (tmp_path / "l_files").symlink_to(tmp_path / "real")
    with pytest.raises(md.OutputError, match="not a folder"):
        to_dzi(rgb, tmp_path / "l.dzi", overwrite=True)
    assert fifo.is_fifo() and (tmp_path / "l_files").is_symlink()


def test_a_pyramid_or_viewer_inside_its_input_is_refused(tiny_ome_zarr, tmp_path) -> None:
    store = Path(shutil.copytree(tiny_ome_zarr, tmp_path / "in.ome.zarr"))
    before = sorted(p.name for p in store.rglob("*"))
    request = "/0/0/0/?c=1&region=0,0,1100,700&max_size=64"
    with pytest.raises(md.OutputError, match="lies inside the input"):
        md.crop(request, store / "x.dzi", image=store)
    with pytest.raises(md.OutputError, match="lies inside the input"):
        md.crop_groups({"a": request}, store / "viewer", image=store)
    with pytest.raises(md.OutputError, match=r"name a folder|is the input"):
        md.crop_groups([request], store, image=store, overwrite=True)
    assert sorted(p.name for p in store.rglob("*")) == before


def test_an_interrupted_group_export_resumes_and_keeps_the_old_folder(tmp_path, monkeypatch):
    from minerva_dask.writers import dzi_viewer

    rng = np.random.default_rng(5)
    groups = {name: rng.integers(0, 256, (300, 1100, 3), dtype=np.uint8) for name in "AB"}
    target = tmp_path / "v"
    target.mkdir()  # an earlier viewer folder
    (target / "old.txt").write_text("old")
    (target / "index.html").write_text("<html></html>")
    real = dzi_viewer.write_pyramid

    def second_fails(data, work, name, *args):
        if name == "B":
            raise KeyboardInterrupt
        return real(data, work, name, *args)

    monkeypatch.setattr(dzi_viewer, "write_pyramid", second_fails)
    with pytest.raises(KeyboardInterrupt):
        md.to_dzi_groups(groups, target, overwrite=True)
    assert sorted(p.name for p in target.iterdir()) == ["index.html", "old.txt"]  # as it was
    assert (tmp_path / ".v.partial" / "A.dzi").exists()
    monkeypatch.setattr(dzi_viewer, "write_pyramid", real)
    result = md.to_dzi_groups(groups, target, resume=True)
    assert result.chunks_skipped == 2 + 1 and result.chunks_written == 2 + 1  # A done before
    assert not (target / "old.txt").exists() and (target / "B.dzi").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v"]


def test_a_full_disk_removes_the_partial_folder_after_the_writes_in_flight(
    tmp_path, monkeypatch
) -> None:
    """A block failing with ENOSPC while its neighbours still write tiles: the partial
    folder is removed once they are done, not while they write into it (a tile made
    during the removal kept the folder: 1 run in 8 on a full tmpfs)."""
    import errno
    import threading
    import time

    from minerva_dask.writers import dzi

    real, lock, calls, running, at_removal = dzi.tile_block, threading.Lock(), [], set(), []

    def full_disk_first(padded, job):
        with lock:
            calls.append(job)
            first = len(calls) == 1
            running.add(id(job))
        try:
            time.sleep(0.1)  # the others start
            if first:
                raise OSError(errno.ENOSPC, "No space left on device")
            time.sleep(0.3)  # still writing when the first has failed
            return real(padded, job)
        finally:
            with lock:
                running.discard(id(job))

    real_rmtree = shutil.rmtree

    def rmtree(path, *args, **kwargs):
        with lock:
            at_removal.append(len(running))
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(dzi, "tile_block", full_disk_first)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    data = da.zeros((600, 4100, 3), dtype=np.uint8, chunks=(1016, 1016, 3))
    with pytest.raises(md.OutputError, match="no space left on device"):
        to_dzi(data, tmp_path / "s.dzi", compute_kwargs={"num_workers": 5})
    assert len(calls) > 1 and at_removal and max(at_removal) == 0
    assert os.listdir(tmp_path) == []


def test_resume_and_overwrite_over_a_complete_pyramid_say_to_drop_resume(tmp_path) -> None:
    data = da.zeros((300, 300, 3), dtype=np.uint8, chunks=(1016, 1016, 3))
    to_dzi(data, tmp_path / "s.dzi")
    with pytest.raises(md.OutputError, match=r"--overwrite alone\) replaces it"):
        to_dzi(data, tmp_path / "s.dzi", overwrite=True, resume=True)
    with pytest.raises(md.OutputError, match=r"complete export \(overwrite=True, CLI"):
        to_dzi(data, tmp_path / "s.dzi", resume=True)
