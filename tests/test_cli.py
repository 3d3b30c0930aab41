"""The command line, run as a user runs it: subprocesses, plus main() in-process."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask.cli import main


def run(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "minerva_dask.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=300,
    )


@pytest.mark.slow
def test_demo_run_with_no_arguments_writes_out_png(tmp_path, demo_path) -> None:
    result = run("crop", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    image = np.asarray(Image.open(tmp_path / "out.png"))
    assert image.shape == (1536, 2048, 3)
    assert "Cropping 1/2 scale" in result.stderr
    assert "Wrote" in result.stderr
    assert image.std() > 10  # a picture, not a flat field


@pytest.mark.slow
def test_first_demo_says_it_generates_and_times_the_whole_command(
    tmp_path, monkeypatch, capsys
) -> None:
    """The first run announces the generation, and "in N s" includes it."""
    import re
    import time

    from minerva_dask import _demo

    cache = tmp_path / "cache"
    monkeypatch.setenv("MINERVA_DASK_CACHE", str(cache))
    monkeypatch.setattr(_demo, "DEMO_SIZE", (512, 384))  # a small demo: the test is quick
    write = _demo.write_ome_tiff_pyramid

    def slow_write(*args, **kwargs):
        assert "Generating the demo image" in capsys.readouterr().err  # said before, not after
        time.sleep(1.2)  # the full demo takes seconds to generate
        return write(*args, **kwargs)

    monkeypatch.setattr(_demo, "write_ome_tiff_pyramid", slow_write)
    assert main(["crop", "-o", str(tmp_path / "a.png")]) == 0
    err = capsys.readouterr().err
    assert float(re.search(r"Wrote .* in ([0-9.]+) s", err).group(1)) >= 1.2
    assert main(["crop", "-o", str(tmp_path / "b.png")]) == 0  # generated once: no message
    assert "Generating" not in capsys.readouterr().err


def test_default_render_of_many_channels_says_which_it_shows(
    tmp_path, shared_data, demo_path, capsys
) -> None:
    many = shared_data / "ome-tiff/cycif-reactive-core-48ch-subifd.ome.tiff"
    args = ["crop", "--max-size", "64", "-o"]
    assert main([*args, str(tmp_path / "a.png"), "--image", str(many)]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "showing channels" in line]
    assert len(lines) == 1 and lines[0].startswith(
        "showing channels 1-4 of 48; list others with c="
    )
    assert main([*args, str(tmp_path / "b.png"), "--image", str(demo_path)]) == 0  # all 4 shown
    assert "showing channels" not in capsys.readouterr().err


@pytest.mark.slow
def test_real_file_run_equals_the_python_api(tmp_path, shared_data) -> None:
    path = shared_data / "ome-tiff/rgb-circles-3ch-uint16-subifd.ome.tif"
    request = (
        "/0/0/0/?c=1|0:65535$FF0000,2|0:65535$00FF00,3|0:65535$0000FF&region=-512,-512,3072,3072"
    )
    result = run(
        "crop",
        request,
        "--image",
        str(path),
        "-o",
        str(tmp_path / "fig.png"),
        "--max-size",
        "700",
        "--background",
        "omero",
    )
    assert result.returncode == 0, result.stderr
    expected = md.render(
        md.open_image(path), md.parse_request(request + "&max_size=700"), background="omero"
    ).compute()
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "fig.png")), expected)
    assert "level 1" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["crop", "/0/0/0/?c=1&region=0,0,1", "--image", "x.ome.tif"], "four numbers"),
        (["crop", "--image", "/nonexistent/slide.ome.tif"], "no such file"),
        (["crop", "/0/0/0/?c=1&region=0,0,10,10"], "no image given"),
        (["crop", "--image", "{data}", "-o", "/nonexistent/dir/out.png"], "does not exist"),
        (["crop", "--image", "{data}", "-o", "out.jpg"], "cannot tell the output format"),
        (["crop", "/0/0/0/?c=9&region=0,0,10,10", "--image", "{data}"], "channel 9 in c"),
        (["crop", "--image", "{data}", "--preset", "vips"], "invalid choice"),
        (["crop", "--image", "{data}", "-o", "x.ome.tif", "--png-level", "9"], "applies to PNG"),
        (["crop", "--image", "{data}", "--png-level", "10"], "invalid choice"),
    ],
)
def test_errors_exit_non_zero_with_one_clear_line(tmp_path, shared_data, args, message) -> None:
    data = str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")
    result = run(*[a.replace("{data}", data) for a in args], cwd=tmp_path)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2
    assert len(lines) == 1 and lines[0].startswith("minerva-dask: error: "), result.stderr
    assert message in lines[0]
    assert not (tmp_path / "out.png").exists()


def _zlib_level_class(png_bytes: bytes) -> int:
    """FLEVEL of the PNG's zlib stream (0 fastest .. 3 best): its first IDAT's header."""
    start = png_bytes.index(b"IDAT") + 4
    return png_bytes[start + 1] >> 6


def test_png_level_sets_the_zlib_level_and_keeps_the_pixels(tmp_path, shared_data) -> None:
    data = str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")
    default, best = tmp_path / "default.png", tmp_path / "best.png"
    assert main(["crop", "--image", data, "-o", str(default), "-q"]) == 0
    assert main(["crop", "--image", data, "-o", str(best), "-q", "--png-level", "9"]) == 0
    assert _zlib_level_class(default.read_bytes()) == 1  # levels 2-5: "fast"
    assert _zlib_level_class(best.read_bytes()) == 3  # levels 7-9: "maximum"
    assert np.array_equal(np.asarray(Image.open(default)), np.asarray(Image.open(best)))


def test_quiet_prints_nothing(tmp_path, shared_data, capsys) -> None:
    data = str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")
    assert main(["crop", "--image", data, "-o", str(tmp_path / "a.png"), "-q"]) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out == ""
    assert (tmp_path / "a.png").exists()


def test_no_overwrite_keeps_the_existing_file(tmp_path, shared_data, capsys) -> None:
    data = str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")
    target = tmp_path / "a.png"
    target.write_bytes(b"keep")
    assert main(["crop", "--image", data, "-o", str(target), "--no-overwrite"]) == 2
    assert target.read_bytes() == b"keep"
    assert "exists" in capsys.readouterr().err


def test_help_explains_the_request(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["crop", "--help"])
    text = capsys.readouterr().out
    for words in ("intensity window", "region=", "max_size=", "Quote the request"):
        assert words in text
    assert "image to PNG, or to a pyramidal OME-TIFF or OME-Zarr" in " ".join(text.split())
    with pytest.raises(SystemExit):
        main(["--help"])
    words = " ".join(capsys.readouterr().out.split())
    assert "crop render a region to PNG, OME-TIFF or OME-Zarr" in words


def test_storage_options_reach_fsspec(tmp_path, tiny_ome_tiff, monkeypatch) -> None:
    import minerva_dask.sources as sources

    seen = {}
    original = sources.open_image

    def spy(ref, *, storage_options=None, **options):
        seen["storage_options"] = storage_options
        return original(ref, storage_options=storage_options, **options)

    monkeypatch.setattr(sources, "open_image", spy)
    args = [
        "crop",
        "--image",
        f"file://{tiny_ome_tiff}",
        "-o",
        str(tmp_path / "b.png"),
        "-q",
        "--storage-option",
        "auto_mkdir=false",
        "--storage-option",
        "block_size=65536",
    ]
    assert main(args) == 0
    assert seen["storage_options"] == {"auto_mkdir": False, "block_size": "65536"}
    assert (tmp_path / "b.png").exists()


def test_public_names_are_the_functions_not_same_named_modules() -> None:
    import importlib

    for name in ("minerva_dask.kernel", "minerva_dask.graph", "minerva_dask.sources"):
        importlib.import_module(name)
    assert callable(md.render)
    assert md.render.__module__ == "minerva_dask.graph"
    assert md.open_image.__module__ == "minerva_dask.sources"


@pytest.mark.parametrize("name", ["x.png", "x.ome.tif"])
def test_outputs_are_written_atomically_with_the_usual_permissions(
    tmp_path, tiny_ome_tiff, name
) -> None:
    """A new output gets 0666 less the umask, as any new file (the OME-TIFF writer's
    temporary file was once made 0600 and renamed as such)."""
    import stat

    target = tmp_path / name
    md.crop("/0/0/0/?c=1&region=0,0,100,100", target, image=tiny_ome_tiff)
    mode = stat.S_IMODE(target.stat().st_mode)
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary file left


def test_version_names_the_installed_package(capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"minerva-dask {md.__version__}\n"


_CROP_AND_LIST_DASK = """
import sys
from minerva_dask.cli import main
from minerva_dask.compute import dask_may_be_configured
configured = dask_may_be_configured()
for region, out in zip(sys.argv[2::2], sys.argv[3::2]):
    code = main(["crop", "/0/0/0/?c=1|500:20000$0000FF,3|300:9000$FF8000&region=" + region,
                 "--image", sys.argv[1], "-o", out, "-q"])
    assert code == 0, code
print(configured, "dask" in sys.modules)
"""


def _crop_in_fresh_process(tiny_ome_tiff, tmp_path, extra_env: dict[str, str]):
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASK_")}
    env.update(HOME=str(tmp_path), **extra_env)  # no ~/.config/dask either
    regions = {"-150,-80,1400,900": tmp_path / "whole.png", "0,0,400,300": tmp_path / "one.png"}
    args = [item for region, out in regions.items() for item in (region, str(out))]
    result = subprocess.run(
        [sys.executable, "-c", _CROP_AND_LIST_DASK, str(tiny_ome_tiff), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    source = md.open_image(tiny_ome_tiff)
    for region, out in regions.items():
        request = md.parse_request(
            f"/0/0/0/?c=1|500:20000$0000FF,3|300:9000$FF8000&region={region}"
        )
        expected = md.render(source, request).compute()
        np.testing.assert_array_equal(np.asarray(Image.open(out)), expected)
    return result.stdout.split()


@pytest.mark.slow
def test_a_png_crop_never_imports_dask_when_nothing_configured_it(tiny_ome_tiff, tmp_path):
    configured, dask_loaded = _crop_in_fresh_process(tiny_ome_tiff, tmp_path, {})
    if configured == "True":
        pytest.skip("this installation has a dask configuration file")
    assert dask_loaded == "False"  # its chunk tasks ran on a thread pool; same pixels


@pytest.mark.slow
def test_a_png_crop_follows_dask_configuration_from_the_environment(tiny_ome_tiff, tmp_path):
    configured, dask_loaded = _crop_in_fresh_process(
        tiny_ome_tiff, tmp_path, {"DASK_SCHEDULER": "synchronous"}
    )
    assert (configured, dask_loaded) == ("True", "True")


_CROP_AND_COUNT_THREADS = """
import atexit, os, sys
from minerva_dask.cli import run
assert "numpy" not in sys.modules  # so OpenBLAS, loaded with numpy, sees the setting
atexit.register(lambda: print(os.environ.get("OPENBLAS_NUM_THREADS"),
                              len(os.listdir("/proc/self/task"))))  # threads left at exit
sys.argv = ["minerva-dask", "crop", "/0/0/0/?c=1|500:20000$0000FF&region=0,0,400,300",
            "--image", sys.argv[1], "-o", sys.argv[2], "-q"]
run()
"""


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads in /proc")
def test_the_console_script_holds_openblas_to_one_thread_unless_told(tiny_ome_tiff, tmp_path):
    """No linear algebra here: OpenBLAS's own thread would spin while a crop uses the cores."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    said = []
    for setting in (None, "2"):
        if setting:
            env["OPENBLAS_NUM_THREADS"] = setting
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                _CROP_AND_COUNT_THREADS,
                str(tiny_ome_tiff),
                str(tmp_path / "o.png"),
            ],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        said.append(result.stdout.split())
    assert said[0] == ["1", "1"]  # only the main thread is left: no OpenBLAS thread
    assert said[1][0] == "2"  # the user's setting stands


@pytest.mark.slow
@pytest.mark.parametrize(
    ("query_q", "flag", "asked"),
    [("&q=0.5", [], "0.5"), ("&q=0.5", ["--jpeg-quality", "0.8"], "0.8"), ("", [], "0.95")],
    ids=["request-q", "flag-wins", "default"],
)
def test_the_request_q_reaches_omero_tiles_unless_the_flag_says_otherwise(
    tmp_path, tiny_ome_tiff, query_q, flag, asked
) -> None:
    from tests.servers.omero import OmeroServer, ServedImage

    with OmeroServer({7: ServedImage.from_tiff(str(tiny_ome_tiff))}, public=True) as server:
        url = f"{server.url}/figure/render_scaled_region/7/0/0/?c=1|0:9000$FF0000&region=0,0,64,64"
        out = str(tmp_path / "q.png")
        assert main(["crop", url + query_q, "-o", out, "-q", *flag]) == 0
        log = [p.replace("%2C", ",") for p in server.state.tile_log]
    tiles = [p for p in log if "format=png" not in p]  # not the PNG probe: the JPEG tiles
    assert tiles and all(p.endswith(f"&q={asked}") for p in tiles), tiles


def test_whole_file_max_bytes_reaches_the_input_but_not_fsspec_or_the_output(
    tmp_path, tiny_ome_tiff, monkeypatch
) -> None:
    import minerva_dask.api as api
    import minerva_dask.sources as sources
    from minerva_dask.sources._fs import fs_storage_options

    seen = {}
    original_open, original_crop = sources.open_image, api.crop

    def spy_open(ref, *, storage_options=None, **options):
        seen["input"] = storage_options
        return original_open(ref, storage_options=storage_options, **options)

    def spy_crop(*args, output_storage_options=None, **kwargs):
        seen["output"] = output_storage_options
        return original_crop(*args, output_storage_options=output_storage_options, **kwargs)

    monkeypatch.setattr(sources, "open_image", spy_open)
    monkeypatch.setattr(api, "crop", spy_crop)
    out = str(tmp_path / "w.png")
    option = ["--storage-option", "whole_file_max_bytes=1000"]
    assert main(["crop", "--image", str(tiny_ome_tiff), "-o", out, "-q", *option]) == 0
    assert seen == {"input": {"whole_file_max_bytes": "1000"}, "output": None}
    assert "whole_file_max_bytes" not in fs_storage_options("http://h/x.tif", seen["input"])


@pytest.mark.parametrize(
    ("output", "option"),
    [
        ("x.png", {"compression": "jpeg"}),
        ("x.ome.zarr", {"compression": "none"}),
        ("x.png", {"zarr_version": "0.4"}),
        ("x.ome.tif", {"resume": True}),
        ("x.png", {"tile_size": 256}),
        ("x.ome.zarr", {"tile_format": "png"}),
    ],
)
def test_an_option_of_another_output_format_is_refused_not_ignored(
    tmp_path, shared_data, output, option
) -> None:
    data = str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")
    with pytest.raises(md.OutputError, match=f"{next(iter(option))} .* applies to"):
        md.crop(None, tmp_path / output, image=data, **option)
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_storage_option_says_the_form_unmasked() -> None:
    import argparse

    from minerva_dask._cli_types import storage_option
    from minerva_dask._redact import redact

    # "expected KEY=VALUE" reached the user as "expected KEY=***" (a key= credential mask)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        storage_option("anon")
    assert "NAME=VALUE (e.g. anon=true)" in redact(str(info.value))


def test_a_raw_export_takes_omero_compatible_without_a_background_error(
    tmp_path, shared_data, capsys
) -> None:
    # it said "--background colours a rendering", which was not given
    data = str(shared_data / "ome-tiff/4ch-uint16-64x64.ome.tif")
    out = str(tmp_path / "raw.ome.zarr")
    args = ["crop", "/0/0/0/?c=1|0:9$FF0000&region=0,0,64,64", "--image", data, "-q"]
    assert main([*args, "--raw", "--omero-compatible", "-o", out]) == 0, capsys.readouterr().err
