"""Never destroy an input or an old output: refused outputs, killed and failed exports.

Kills run the real command line in a subprocess: a full-resolution 4-channel export of the
demo image (4096 x 3072, about a second of work here), killed once its temporary file or
partial store has appeared (the process must then still be running: its exit status
proves the kill landed mid-export).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

import minerva_dask as md
from minerva_dask._stop import Stopped, stop_on_signals
from minerva_dask.cli import main
from minerva_dask.exports import to_ome_tiff, to_ome_zarr, to_png
from minerva_dask.writers._atomic import check_not_input

pytestmark = pytest.mark.slow  # subprocesses killed mid-write, full disks, many outputs

REPO = Path(__file__).resolve().parents[1]
BIG = (
    "/0/0/0/?c=1|600:24000$0000FF,2|0:30000$00FF00,3|0:30000$FF0000,4|0:30000$FFFFFF"
    "&region=0,0,4096,3072&max_size=5000"
)
SMALL = "/0/0/0/?c=1|600:24000$0000FF&region=100,50,300,200&max_size=5000"
OTHER = "/0/0/0/?c=2|0:30000$00FF00&region=0,0,320,240&max_size=5000"
SMALL_TIFF_REQUEST = "/0/0/0/?c=1|500:20000$0000FF,2|0:8000$00FF00&region=0,0,300,200"


def tree_hash(path: Path) -> dict[str, str]:
    """Every file under ``path`` (or ``path`` itself), hidden ones too: name -> SHA-256."""
    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def leftovers(folder: Path) -> list[str]:
    """Hidden temporaries in ``folder``: .part files, .levels-* scratch, partial stores,
    and ``.NAME.lock`` files (removed by an export that ends, even in failure; left, not
    held, by a killed one)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "minerva_dask.cli", *args]


def _env() -> dict[str, str]:
    env = os.environ.copy()
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO / "src"), str(REPO), env.get("PYTHONPATH")) if p
    )
    return env


# -- an output that is, contains or lies inside an input -------------------------------


@pytest.fixture
def inputs(tmp_path, tiny_ome_tiff, tiny_ome_zarr):
    """Private copies of a tiny OME-TIFF and OME-Zarr (a bug here must not harm the
    session's fixtures)."""
    folder = tmp_path / "in"
    folder.mkdir()
    tiff = Path(shutil.copy(tiny_ome_tiff, folder / "slide.ome.tif"))
    store = Path(shutil.copytree(tiny_ome_zarr, folder / "slide.ome.zarr"))
    return tiff, store


def test_every_writer_refuses_an_output_that_is_its_input(inputs, tmp_path) -> None:
    tiff, store = inputs
    before = {tiff: tree_hash(tiff), store: tree_hash(store)}
    os.symlink(tiff, tmp_path / "link.ome.tif")
    for source_path in (tiff, store):
        rendering = md.render(
            md.open_image(source_path),
            md.parse_request(SMALL_TIFF_REQUEST),
            align="output",
            chunk_size=128,
        )
        assert rendering.inputs == (str(source_path),)
        with pytest.raises(md.OutputError, match=r"is the input .*; choose another output"):
            to_png(rendering, source_path)
        with pytest.raises(md.OutputError, match="is the input"):
            to_ome_tiff(rendering, source_path, overwrite=True)
        with pytest.raises(md.OutputError, match="is the input"):
            to_ome_zarr(rendering, source_path, overwrite=True)
        with pytest.raises(md.OutputError, match="is the input"):
            to_ome_zarr(rendering, f"file://{source_path}/", resume=True)
        with pytest.raises(md.OutputError, match="is the input"):
            md.crop(
                SMALL_TIFF_REQUEST,
                source_path,
                image=source_path,
                overwrite=True,
                format="ome-tiff",
            )
    tiff_rendering = md.render(md.open_image(tiff), md.parse_request(SMALL_TIFF_REQUEST))
    with pytest.raises(md.OutputError, match="is the input"):  # through a symlink
        to_ome_tiff(tiff_rendering, tmp_path / "link.ome.tif", overwrite=True)
    store_rendering = md.render(md.open_image(store), md.parse_request(SMALL_TIFF_REQUEST))
    with pytest.raises(md.OutputError, match="lies inside the input"):
        to_ome_zarr(store_rendering, store / "0" / "x.ome.zarr")
    with pytest.raises(md.OutputError, match="contains the input"):
        to_ome_zarr(store_rendering, tmp_path / "in", overwrite=True)
    assert before == {tiff: tree_hash(tiff), store: tree_hash(store)}
    assert sorted(p.name for p in (tmp_path / "in").iterdir()) == [
        "slide.ome.tif",
        "slide.ome.zarr",
    ]


def test_remote_inputs_are_compared_as_normalised_urls() -> None:
    same = [
        "S3://Bucket/a.ome.zarr",
        "s3://key:secret@bucket/a.ome.zarr/",
        "s3://bucket/a.ome.zarr?v=2",
    ]
    for output in same:
        with pytest.raises(md.OutputError, match="is the input"):
            check_not_input(output, ["s3://bucket/a.ome.zarr"])
    with pytest.raises(md.OutputError, match="lies inside"):
        check_not_input("https://host/data/a.ome.zarr/0", ["https://host/data/a.ome.zarr"])
    check_not_input("s3://bucket/a.ome.zarr2", ["s3://bucket/a.ome.zarr"])  # a sibling
    check_not_input("bucket/a.ome.zarr", ["s3://bucket/a.ome.zarr"])  # a local path


def test_imgdata_refuses_to_write_over_its_input(tmp_path, shared_data, capsys) -> None:
    xml = Path(shutil.copy(shared_data / "ome-xml/from-colon-2ch.ome.xml", tmp_path / "x.xml"))
    before = tree_hash(xml)
    os.symlink(xml, tmp_path / "alias.json")
    for output in (str(xml), str(tmp_path / "." / "x.xml"), str(tmp_path / "alias.json")):
        assert main(["imgdata", str(xml), "--image-id", "0", "-o", output]) == 2
        assert "is the input" in capsys.readouterr().err
    assert tree_hash(xml) == before
    assert main(["imgdata", str(xml), "--image-id", "0", "-o", str(tmp_path / "y.json")]) == 0


def test_main_restores_the_signal_handlers_it_installs(tmp_path, shared_data) -> None:
    def mine(signum, frame):  # a caller's own handler
        pass

    previous = {sig: signal.signal(sig, mine) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        xml = shared_data / "ome-xml/from-colon-2ch.ome.xml"
        assert main(["imgdata", str(xml), "--image-id", "0", "-o", str(tmp_path / "a.json")]) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGHUP) is mine
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _arrays_of_an_image(path: Path) -> dict[str, tuple]:
    """Bare dask arrays made from the image at ``path``, each with the export that would
    write it over its input."""
    import dask.array as da

    from minerva_dask.exports import to_dzi, to_ome_tiff_planes

    source = md.open_image(path)
    request = md.parse_request(SMALL)
    rgb = md.render(source, request, align="output", chunk_size=256).data
    raw = md.raw_region(source, request).data
    channels = da.stack(list(md.channel_arrays(source, request).values()))
    return {
        "png of rendering.data": (to_png, rgb, {}),
        "ome-tiff of a slice of it": (to_ome_tiff, rgb[:128, :128], {"overwrite": True}),
        "ome-zarr of it rechunked": (to_ome_zarr, rgb.rechunk(128), {"overwrite": True}),
        "dzi of it": (to_dzi, rgb, {"overwrite": True}),
        "ome-tiff planes of raw_region.data": (to_ome_tiff_planes, raw, {"overwrite": True}),
        "ome-tiff planes of channel_arrays": (to_ome_tiff_planes, channels, {"overwrite": True}),
    }


@pytest.mark.parametrize(
    "case",
    [
        "png of rendering.data",
        "ome-tiff of a slice of it",
        "ome-zarr of it rechunked",
        "dzi of it",
        "ome-tiff planes of raw_region.data",
        "ome-tiff planes of channel_arrays",
    ],
)
def test_a_bare_dask_array_of_an_image_is_never_written_over_it(tmp_path, demo_path, case):
    dzi = case.startswith("dzi")  # a pyramid's NAME_files folder would hold the input
    image = tmp_path / "out_files" / "in.ome.tif" if dzi else tmp_path / "in.ome.tif"
    image.parent.mkdir(exist_ok=True)
    shutil.copy(demo_path, image)
    before = tree_hash(tmp_path)
    write, array, options = _arrays_of_an_image(image)[case]
    with pytest.raises(md.OutputError, match="the input"):
        write(array, tmp_path / "out.dzi" if dzi else image, **options)
    assert tree_hash(tmp_path) == before  # nothing replaced, nothing left beside it


class _SignalsInDel:
    """Sends ``sig`` to this process from its ``__del__``, where Python drops exceptions
    (as in the import system's module-lock callbacks, where a Ctrl-C once landed)."""

    def __init__(self, sig: int) -> None:
        self.sig = sig

    def __del__(self) -> None:
        os.kill(os.getpid(), self.sig)
        for _ in range(1000):  # the handler runs at one of these bytecodes
            pass


def _stopped_where_python_drops_it(sig: int, reached: list[str]) -> None:
    with stop_on_signals():
        _SignalsInDel(sig)  # dropped at once: __del__ runs, the stop is "ignored" there
        for _ in range(200):
            time.sleep(0.005)  # the stop is delivered again, and lands here
        reached.append("the end")


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGTERM, Stopped), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_stop_landing_where_python_drops_exceptions_still_stops_the_run(sig, raised) -> None:
    reached: list[str] = []
    with pytest.raises(raised):
        _stopped_where_python_drops_it(sig, reached)
    assert reached == []


def _dropped_at_the_very_end(sig: int) -> None:
    with stop_on_signals():
        _SignalsInDel(sig)  # dropped, and the block ends before the resend can land


@pytest.mark.parametrize(
    ("sig", "raised"), [(signal.SIGTERM, Stopped), (signal.SIGINT, KeyboardInterrupt)]
)
def test_a_stop_dropped_as_the_run_ends_is_raised_on_leaving_it(sig, raised) -> None:
    with pytest.raises(raised):
        _dropped_at_the_very_end(sig)
    time.sleep(0.1)  # and nothing lands later, outside the run


def test_a_signal_ignored_by_nohup_stays_ignored() -> None:
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with stop_on_signals():
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(0.05)  # nothing raised: the run goes on
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def _stopped_twice(cleaned: list[str]) -> None:
    with stop_on_signals():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # ignored: the clean-up goes on
            time.sleep(0.05)
            cleaned.append("cleaned")


def test_a_second_sigterm_does_not_cut_the_clean_up_short() -> None:
    cleaned: list[str] = []
    with pytest.raises(Stopped):
        _stopped_twice(cleaned)
    assert cleaned == ["cleaned"]


# -- killed, stopped and failed exports keep the old output ----------------------------


def _old_output(path: Path, demo_path: Path) -> dict[str, str]:
    """A small earlier export at ``path``: the output a failed --overwrite must keep."""
    md.crop(SMALL, path, image=demo_path, overwrite=True)
    return tree_hash(path)


def _start_and_kill(args: list[str], folder: Path, sig: int) -> subprocess.CompletedProcess:
    """Start the CLI; once its temporary appears in ``folder``, send ``sig``. A run started
    in the background (``nohup``, ``&``) inherits SIGINT ignored, and Python then keeps it
    ignored, as a user's nohup asks: the child is given Python's own handler back first."""
    command = _cli(*args)
    if sig == signal.SIGINT:
        command[1:3] = [
            "-c",
            "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
            "runpy.run_module('minerva_dask.cli', run_name='__main__', alter_sys=True)",
        ]
    process = subprocess.Popen(
        command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while not any(n.endswith((".part", ".partial")) for n in os.listdir(folder)):
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the export never started"
            time.sleep(0.005)
        process.send_signal(sig)
        out, err = process.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


@pytest.mark.parametrize("name", ["o.ome.tif", "o.ome.zarr"])
def test_kill_9_during_overwrite_keeps_the_old_output(tmp_path, demo_path, name) -> None:
    target = tmp_path / name
    old = _old_output(target, demo_path)
    args = ["crop", BIG, "--image", str(demo_path), "-o", str(target), "--overwrite", "-q"]
    result = _start_and_kill(args, tmp_path, signal.SIGKILL)
    assert result.returncode == -signal.SIGKILL
    assert tree_hash(target) == old
    again = subprocess.run(_cli(*args), env=_env(), capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr  # the killed export left no lock held
    assert f".{name}.lock" not in leftovers(tmp_path)


@pytest.mark.parametrize(
    ("name", "sig", "code"),
    [
        ("o.ome.tif", signal.SIGTERM, 143),
        ("o.ome.tif", signal.SIGHUP, 129),
        ("o.ome.tif", signal.SIGINT, 130),
        ("o.ome.zarr", signal.SIGTERM, 143),
    ],
)
def test_a_stopped_overwrite_cleans_up_and_keeps_the_old_output(
    tmp_path, demo_path, name, sig, code
) -> None:
    target = tmp_path / name
    old = _old_output(target, demo_path)
    args = ["crop", BIG, "--image", str(demo_path), "-o", str(target), "--overwrite", "-q"]
    result = _start_and_kill(args, tmp_path, sig)
    assert result.returncode == code, result.stderr
    message = "interrupted" if sig == signal.SIGINT else f"stopped by {signal.Signals(sig).name}"
    assert result.stderr.strip().splitlines()[-1] == f"minerva-dask: {message}"
    assert tree_hash(target) == old
    if name.endswith(".tif"):
        assert leftovers(tmp_path) == []  # no .part, no .levels-* scratch
        return
    # OME-Zarr: the unfinished export stays beside the target, marked, for --resume
    assert leftovers(tmp_path) == [f".{name}.partial"]
    entry = dict(zarr.open_group(str(tmp_path / f".{name}.partial"), mode="r").attrs)
    assert entry["minerva-dask"]["state"] == "in-progress"
    resumed = subprocess.run(
        _cli("crop", BIG, "--image", str(demo_path), "-o", str(target), "--resume", "-q"),
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert leftovers(tmp_path) == []
    got = np.moveaxis(zarr.open_group(str(target), mode="r")["0"][...], 0, 2)
    want = md.render(md.open_image(demo_path), md.parse_request(BIG)).compute()
    np.testing.assert_array_equal(got, want)


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "1m"):
    """A tmpfs of ``size`` mounted on ``folder`` (root only: skipped elsewhere)."""
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=False)


@pytest.mark.parametrize("name", ["o.png", "o.ome.tif", "o.ome.zarr", "o4.ome.zarr"])
def test_a_full_disk_is_one_line_and_keeps_the_old_output(tmp_path, demo_path, name) -> None:
    with small_disk(tmp_path / "disk") as disk:
        target = disk / name
        old = _old_output(target, demo_path)
        version = ["--zarr-version", "0.4"] if name.startswith("o4") else []
        result = subprocess.run(
            _cli(
                "crop",
                BIG,
                "--image",
                str(demo_path),
                "-o",
                str(target),
                "--overwrite",
                "-q",
                *version,
            ),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 2
        assert (
            result.stderr
            == f"minerva-dask: error: cannot write {target}: no space left on device\n"
        )
        assert tree_hash(target) == old
        assert leftovers(disk) == []


def _full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("name", ["o.png", "o.ome.tif"])
def test_a_full_disk_at_the_final_fsync_is_one_line_and_keeps_the_old_output(
    tmp_path, demo_path, monkeypatch, name
) -> None:
    target = tmp_path / name
    old = _old_output(target, demo_path)
    monkeypatch.setattr(os, "fsync", _full)
    with pytest.raises(md.OutputError) as caught:
        md.crop(OTHER, target, image=demo_path, overwrite=True)
    assert str(caught.value) == f"cannot write {target}: no space left on device"
    assert tree_hash(target) == old
    assert leftovers(tmp_path) == []


def test_a_full_disk_when_the_new_store_is_swapped_in_keeps_the_old_one(
    tmp_path, demo_path, monkeypatch
) -> None:
    from minerva_dask.writers import _store

    target = tmp_path / "o.ome.zarr"
    old = _old_output(target, demo_path)
    rename = os.rename

    def failing_rename(source, destination):
        if str(source).endswith(".partial"):
            _full()
        rename(source, destination)

    monkeypatch.setattr(_store, "_exchange", lambda a, b: False)  # the two-rename swap
    monkeypatch.setattr(os, "rename", failing_rename)
    with pytest.raises(md.OutputError, match=r"^cannot write .*: no space left on device$"):
        md.crop(OTHER, target, image=demo_path, overwrite=True)
    assert tree_hash(target) == old
    assert leftovers(tmp_path) == []


def test_an_overwrite_swaps_the_complete_store_in(tmp_path, demo_path) -> None:
    target = tmp_path / "o.ome.zarr"
    old = _old_output(target, demo_path)
    md.crop(OTHER, target, image=demo_path, overwrite=True)
    assert tree_hash(target) != old
    got = np.moveaxis(zarr.open_group(str(target), mode="r")["0"][...], 0, 2)
    want = md.render(md.open_image(demo_path), md.parse_request(OTHER)).compute()
    np.testing.assert_array_equal(got, want)
    assert leftovers(tmp_path) == []


def test_resume_refuses_a_foreign_store_and_a_complete_export(tmp_path, shared_data, demo_path):
    foreign = Path(
        shutil.copytree(
            shared_data / "ome-zarr/blobs_image_v04.ome.zarr", tmp_path / "foreign.ome.zarr"
        )
    )
    before = tree_hash(foreign)
    for resume_only in (["--resume"], ["--resume", "--overwrite"]):
        result = subprocess.run(
            _cli("crop", SMALL, "--image", str(demo_path), "-o", str(foreign), "-q", *resume_only),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 2
        assert "not written by minerva-dask; it was left untouched" in result.stderr
    assert tree_hash(foreign) == before
    done = tmp_path / "done.ome.zarr"
    md.crop(SMALL, done, image=demo_path)
    complete = tree_hash(done)
    with pytest.raises(md.OutputError, match="a complete export"):
        md.crop(SMALL, done, image=demo_path, resume=True)
    assert tree_hash(done) == complete
    assert leftovers(tmp_path) == []


def test_an_existing_remote_store_is_never_replaced(tmp_path, moto_server, demo_path) -> None:
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": moto_server}}
    s3fs.S3FileSystem(**options).makedirs("safety", exist_ok=True)
    url = "s3://safety/old.ome.zarr"
    md.crop(SMALL, url, image=demo_path, output_storage_options=options)
    fs = s3fs.S3FileSystem(**options)
    before = {p: fs.cat_file(p) for p in fs.find(url)}
    with pytest.raises(md.OutputError, match="cannot swap a store atomically; delete it first"):
        md.crop(SMALL, url, image=demo_path, overwrite=True, output_storage_options=options)
    assert {p: fs.cat_file(p) for p in fs.find(url)} == before


@pytest.mark.parametrize("fmt", ["png", "ome-tiff", "ome-zarr"])
def test_an_output_that_is_a_pipe_or_a_plain_file_in_a_store_s_place_is_refused(
    fmt, tmp_path, demo_path, capsys
) -> None:
    """A device or a pipe given as -o (``/dev/null``, a FIFO) would be replaced by the
    rename that makes outputs atomic; an OME-Zarr swapped in would replace a plain file."""
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    code = main(["crop", SMALL, "--image", str(demo_path), "-o", str(fifo), "--format", fmt,
                 "--overwrite", "-q"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "not a regular file" in err or "not a folder" in err
    assert fifo.is_fifo()
    if fmt == "ome-zarr":
        plain = tmp_path / "plain.ome.zarr"
        plain.write_bytes(b"not a store")
        code = main(["crop", SMALL, "--image", str(demo_path), "-o", str(plain), "--overwrite",
                     "-q"])  # fmt: skip
        assert code == 2 and "not a folder" in capsys.readouterr().err
        assert plain.read_bytes() == b"not a store"


def test_imgdata_refuses_a_pipe_as_its_output(tmp_path, shared_data, capsys) -> None:
    fifo = tmp_path / "out.fifo"
    os.mkfifo(fifo)
    xml = shared_data / "ome-xml/from-colon-2ch.ome.xml"
    assert main(["imgdata", str(xml), "--image-id", "0", "-o", str(fifo)]) == 2
    assert "not a regular file" in capsys.readouterr().err
    assert fifo.is_fifo()


def test_a_symlinked_png_output_is_written_through_and_the_link_kept(tmp_path, demo_path) -> None:
    real, link = tmp_path / "real.png", tmp_path / "link.png"
    link.symlink_to(real)
    assert main(["crop", SMALL, "--image", str(demo_path), "-o", str(link), "-q"]) == 0
    assert link.is_symlink() and real.is_file() and real.stat().st_size > 0


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown: root only")
@pytest.mark.parametrize("name", ["o.png", "o.ome.tif"])
def test_a_link_planted_by_another_user_is_not_written_through(
    tmp_path, demo_path, name, capsys
) -> None:
    victim = tmp_path / "victim" / name
    victim.parent.mkdir()
    victim.write_bytes(b"someone's file")
    link = tmp_path / name
    link.symlink_to(victim)
    os.lchown(link, 12345, 12345)  # planted by another user of a shared folder
    args = ["crop", SMALL, "--image", str(demo_path), "-o", str(link), "--overwrite", "-q"]
    assert main(args) == 2
    assert "symbolic link owned by another user" in capsys.readouterr().err
    assert victim.read_bytes() == b"someone's file" and link.is_symlink()
    assert leftovers(tmp_path) == [] and leftovers(victim.parent) == []


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="chown: root only")
def test_ones_own_link_to_a_planted_link_is_not_written_through(tmp_path, demo_path) -> None:
    victim = tmp_path / "victim" / "o.png"
    victim.parent.mkdir()
    victim.write_bytes(b"someone's file")
    planted = tmp_path / "planted.png"
    planted.symlink_to(victim)
    os.lchown(planted, 12345, 12345)
    (tmp_path / "o.png").symlink_to(planted)  # one's own, naming the planted one
    args = ["crop", SMALL, "--image", str(demo_path), "-o", str(tmp_path / "o.png"), "-q"]
    assert main(args) == 2
    assert victim.read_bytes() == b"someone's file"


def test_a_deep_zoom_name_too_long_for_its_tiles_folder_is_one_line(tmp_path, capsys) -> None:
    name = "n" * 250 + ".dzi"  # a valid file name; NAME_files would be 256 bytes
    args = ["crop", SMALL, "--image", str(md.demo_image_path()), "-o", str(tmp_path / name)]
    assert main([*args, "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "shorter name" in err[0]
    assert list(tmp_path.iterdir()) == []


def test_a_stopped_runs_new_zarr_store_is_cleared_by_the_next_export(tmp_path, demo_path):
    stale = tmp_path / ".o.ome.zarr.partial.new-0badf00d"  # zarr's writes outlived a stop
    stale.mkdir()
    (stale / "zarr.json").write_text("{}")
    md.crop(SMALL, tmp_path / "o.ome.zarr", image=demo_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.ome.zarr"]


def test_an_input_that_is_a_pipe_is_refused_without_blocking(tmp_path, capsys) -> None:
    fifo = tmp_path / "in.ome.tif"
    os.mkfifo(fifo)  # opening it to read would wait for a writer forever
    assert main(["crop", SMALL, "--image", str(fifo), "-o", str(tmp_path / "o.png")]) == 2
    assert "not a regular file" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["tiff", "zarr"])
def test_a_rewritten_input_is_another_render_to_resume(kind, tmp_path, inputs) -> None:
    """--resume continues only the same render of the same image: the same path with
    other pixels (a file rewritten between two runs) must not be stitched with the old."""
    source_path = inputs[0] if kind == "tiff" else inputs[1]
    copy = tmp_path / source_path.name
    if source_path.is_dir():
        shutil.copytree(source_path, copy)
    else:
        shutil.copy(source_path, copy)
    request = md.parse_request(SMALL_TIFF_REQUEST)
    before = md.render(md.open_image(copy), request, align="output").name
    again = md.render(md.open_image(copy), request, align="output").name
    metadata = copy / ("zarr.json" if (copy / "zarr.json").exists() else ".zattrs")
    changed = copy if copy.is_file() else metadata
    stat = changed.stat()
    os.utime(changed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    after = md.render(md.open_image(copy), request, align="output").name
    assert before == again != after


@pytest.mark.parametrize("kind", ["ome-zarr", "figure", "groups"])
def test_overwrite_never_replaces_a_folder_of_someone_elses_files(
    kind, tmp_path, demo_path
) -> None:
    """--overwrite replaces an earlier output, not a folder that merely bears its name."""
    from minerva_dask.errors import OutputError
    from minerva_dask.figure._output import check_output_dir

    name = {"ome-zarr": "mydocs.ome.zarr", "figure": "mydocs", "groups": "viewer"}[kind]
    folder = tmp_path / name
    folder.mkdir()
    (folder / "thesis.txt").write_text("four years of work")
    url = "/0/0/0/?c=1&region=0,0,512,512&max_size=64"
    write = {
        "figure": lambda: check_output_dir(folder, overwrite=True, inputs=()),
        "groups": lambda: md.crop_groups({"DNA": url}, folder, image=demo_path, overwrite=True),
        "ome-zarr": lambda: md.crop(url, folder, image=demo_path, overwrite=True),
    }[kind]
    with pytest.raises(OutputError, match="--overwrite replaces only an earlier output"):
        write()
    assert (folder / "thesis.txt").read_text() == "four years of work"
    assert sorted(p.name for p in folder.iterdir()) == ["thesis.txt"]


def test_a_png_to_a_url_is_refused_as_local_only_not_as_a_missing_folder(tmp_path) -> None:
    from minerva_dask.writers._atomic import check_output_path

    for url in ("s3://lab/figure.png", "https://example.org/figure.png"):
        with pytest.raises(md.OutputError, match="goes to a local path") as info:
            check_output_path(url)
        assert ":/lab" not in str(info.value).replace("://", "")  # no s3:/lab folder


def test_a_folder_that_takes_no_new_file_is_one_error_not_an_unexpected_one() -> None:
    from minerva_dask.writers._atomic import create_temp_beside

    # /proc looks writable to root (os.access) but creates no file: FileNotFoundError
    with pytest.raises(md.OutputError, match="cannot create a file in /proc"):
        create_temp_beside(Path("/proc/x.ome.tif"))


def test_an_input_named_by_another_scheme_of_its_store_is_not_written() -> None:
    # -o s3a://lab/in/demo.ome.tif --overwrite replaced the input s3://lab/in/demo.ome.tif
    for output in (
        "s3a://lab/in/demo.ome.tif",
        "s3n://lab/in/demo.ome.tif",
        "s3://lab//in/demo.ome.tif",
    ):
        with pytest.raises(md.OutputError, match="is the input"):
            check_not_input(output, ["s3://lab/in/demo.ome.tif"])
    with pytest.raises(md.OutputError, match="lies inside"):
        check_not_input("gcs://b/in.ome.zarr/0", ["gs://b/in.ome.zarr"])
