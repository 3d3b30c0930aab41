"""Whole-slide exports: OME-Zarr and OME-TIFF, round trips, NGFF rules, resume, clusters."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import zarr

import minerva_dask as md
from minerva_dask._demo import SyntheticSource
from minerva_dask.cli import main
from minerva_dask.exports import to_ome_tiff, to_ome_zarr
from minerva_dask.writers._pyramid import downsample_2x
from tests.failing_source import FailingSource
from tests.reference import expected_levels

REQUEST = (
    "/0/0/0/?c=1|500:20000$0000FF,-2|0:8000$00FF00,3|300:9000$FF8000"
    "&region=-150,-80,1400,900&max_size=5000"
)


@pytest.fixture
def rendering(tiny_ome_tiff):
    return md.render(
        md.open_image(tiny_ome_tiff), md.parse_request(REQUEST), align="output", chunk_size=256
    )


def zarr_levels(path) -> list[np.ndarray]:
    group = zarr.open_group(str(path), mode="r")
    attrs = dict(group.attrs)
    multiscale = (attrs.get("ome") or attrs)["multiscales"][0]
    return [np.moveaxis(group[d["path"]][...], 0, 2) for d in multiscale["datasets"]]


@pytest.mark.slow
@pytest.mark.parametrize("version", ["0.5", "0.4"])
def test_round_trip_both_formats_every_level(rendering, tmp_path, version) -> None:
    in_memory = md.render(rendering.source, rendering.request).compute()
    zarr_result = to_ome_zarr(rendering, tmp_path / "o.ome.zarr", version=version)
    tiff_result = to_ome_tiff(rendering, tmp_path / "o.ome.tif", chunk=256)
    from_zarr = zarr_levels(tmp_path / "o.ome.zarr")
    with tifffile.TiffFile(tmp_path / "o.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "YXS"
        from_tiff = [level.asarray() for level in tif.series[0].levels]
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB
    expected = expected_levels(in_memory, len(from_zarr))
    # 1400 -> 700 -> 350 -> 175: down to one 256 px chunk
    assert len(from_zarr) == zarr_result.levels == len(from_tiff) == tiff_result.levels == 4
    for level, want in enumerate(expected):
        np.testing.assert_array_equal(from_zarr[level], want, err_msg=f"zarr level {level}")
    for level, got in enumerate(from_tiff):
        np.testing.assert_array_equal(got, expected[level], err_msg=f"tiff level {level}")


@pytest.mark.slow
def test_ngff_metadata_follows_the_05_and_04_rules(rendering, tmp_path) -> None:
    to_ome_zarr(rendering, tmp_path / "v5.ome.zarr", version="0.5")
    to_ome_zarr(rendering, tmp_path / "v4.ome.zarr", version="0.4")
    v5 = zarr.open_group(str(tmp_path / "v5.ome.zarr"), mode="r")
    assert v5.metadata.zarr_format == 3
    ome = dict(v5.attrs)["ome"]
    assert ome["version"] == "0.5"
    v4 = zarr.open_group(str(tmp_path / "v4.ome.zarr"), mode="r")
    assert v4.metadata.zarr_format == 2
    attrs4 = dict(v4.attrs)
    assert attrs4["multiscales"][0]["version"] == "0.4"
    for multiscale, omero, group in (
        (ome["multiscales"][0], ome["omero"], v5),
        (attrs4["multiscales"][0], attrs4["omero"], v4),
    ):
        assert [a["name"] for a in multiscale["axes"]] == ["c", "y", "x"]
        assert [a["type"] for a in multiscale["axes"]] == ["channel", "space", "space"]
        assert multiscale["axes"][1]["unit"] == "micrometer"
        for level, dataset in enumerate(multiscale["datasets"]):
            (transform,) = dataset["coordinateTransformations"]
            assert transform["type"] == "scale"
            assert transform["scale"] == pytest.approx([1.0, 0.65 * 2**level, 0.65 * 2**level])
            assert group[dataset["path"]].shape[0] == 3
        assert [c["label"] for c in omero["channels"]] == ["Red", "Green", "Blue"]
        assert [c["color"] for c in omero["channels"]] == ["FF0000", "00FF00", "0000FF"]
        assert "request" in dict(group.attrs)["minerva-dask"]


@pytest.mark.slow
def test_ome_zarr_py_reads_the_output(rendering, tmp_path) -> None:
    reader = pytest.importorskip("ome_zarr.reader")
    io = pytest.importorskip("ome_zarr.io")
    to_ome_zarr(rendering, tmp_path / "o.ome.zarr")
    nodes = list(reader.Reader(io.parse_url(str(tmp_path / "o.ome.zarr")))())
    image = nodes[0]
    assert len(image.data) == 4
    assert image.data[0].shape == (3, 900, 1400)
    assert image.metadata["channel_names"] == ["Red", "Green", "Blue"]


def test_our_own_source_opens_the_output(rendering, tmp_path) -> None:
    to_ome_zarr(rendering, tmp_path / "o.ome.zarr")
    to_ome_tiff(rendering, tmp_path / "o.ome.tif")
    for path in (tmp_path / "o.ome.zarr", tmp_path / "o.ome.tif"):
        info = md.open_image(path).info
        assert (info.width, info.height, info.size_c) == (1400, 900, 3)
        assert info.pixel_size_um == pytest.approx((0.65, 0.65))
    assert [c.name for c in md.open_image(tmp_path / "o.ome.zarr").info.channels] == [
        "Red",
        "Green",
        "Blue",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("compression", ["deflate", "lzw", "zstd", "none", "jpeg"])
def test_ome_tiff_compressions(rendering, tmp_path, compression) -> None:
    to_ome_tiff(rendering, tmp_path / "c.ome.tif", compression=compression)
    with tifffile.TiffFile(tmp_path / "c.ome.tif") as tif:
        got = tif.series[0].asarray()
        name = tif.pages[0].compression.name
    assert (
        name
        == {
            "deflate": "ADOBE_DEFLATE",
            "lzw": "LZW",
            "zstd": "ZSTD",
            "none": "NONE",
            "jpeg": "JPEG",
        }[compression]
    )
    expected = md.render(rendering.source, rendering.request).compute()
    if compression == "jpeg":
        assert np.abs(got.astype(int) - expected).mean() < 3
    else:
        np.testing.assert_array_equal(got, expected)


def test_ome_tiff_describes_how_it_was_made(rendering, tmp_path) -> None:
    to_ome_tiff(rendering, tmp_path / "d.ome.tif")
    with tifffile.TiffFile(tmp_path / "d.ome.tif") as tif:
        xml = tif.ome_metadata
        subifd = tif.series[0].levels[1].keyframe
        x_res = subifd.tags["XResolution"].value
    assert 'PhysicalSizeX="0.65"' in xml
    assert "region=-150,-80,1400,900" in xml.replace("&amp;", "&")
    assert "tiny (rendered)" in xml
    assert x_res[0] / x_res[1] == pytest.approx(1e4 / 1.3)  # level 1: 1.3 µm pixels


@pytest.mark.slow
def test_an_interrupted_zarr_export_resumes_skipping_written_chunks(tiny_ome_tiff, tmp_path):
    source = md.open_image(tiny_ome_tiff)
    request = md.parse_request(REQUEST)
    # chunk rows start at y = -80, 176, 432, 688: the last row fails, one row at a time
    failing = md.render(FailingSource(source, 600), request, align="output", chunk_size=256)
    target = tmp_path / "r.ome.zarr"
    partial = tmp_path / ".r.ome.zarr.partial"  # the target appears only when complete
    with pytest.raises(OSError, match="the network went away"):
        to_ome_zarr(failing, target, prefetch=1, shard=1)  # one object per chunk
    assert not target.exists()
    attrs = dict(zarr.open_group(str(partial), mode="r").attrs)
    assert "ome" not in attrs and attrs["minerva-dask"]["state"] == "in-progress"  # unfinished
    with pytest.raises(md.OutputError, match="resume"):
        to_ome_zarr(failing, target)
    marked = {p.name for p in (partial / ".minerva-dask" / "0").iterdir()}
    # the three rows before the failure are all written; chunk 3.5 of the failing row lies
    # right of the image (x >= 1100), reads nothing, and may finish before the error lands
    before_failure = {f"{row}.{col}" for row in range(3) for col in range(6)}
    assert before_failure <= marked <= before_failure | {"3.5"}
    healthy = md.render(source, request, align="output", chunk_size=256)
    with pytest.raises(md.OutputError, match=r"resume with shard=1 \(CLI: --shard 1\)"):
        to_ome_zarr(healthy, target, resume=True)  # the default, 4, is another layout
    result = to_ome_zarr(healthy, target, resume=True, shard=1)
    assert result.chunks_skipped == len(marked)  # exactly the chunks marked done
    assert result.chunks_written + result.chunks_skipped == 4 * 6 + 2 * 3 + 1 * 2 + 1
    expected = expected_levels(md.render(source, request).compute(), 4)
    for got, want in zip(zarr_levels(target), expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert not (target / ".minerva-dask").exists() and not partial.exists()


@pytest.mark.slow
def test_a_marker_from_another_render_is_not_trusted(tiny_ome_tiff, tmp_path) -> None:
    source = md.open_image(tiny_ome_tiff)
    target = tmp_path / "m.ome.zarr"
    other = md.render(
        source,
        md.parse_request(REQUEST.replace("500:20000", "0:100")),
        align="output",
        chunk_size=256,
    )
    failing = md.render(
        FailingSource(source, 0), md.parse_request(REQUEST), align="output", chunk_size=256
    )
    with pytest.raises(OSError, match="the network went away"):
        to_ome_zarr(failing, target)
    partial = tmp_path / ".m.ome.zarr.partial"
    before = sorted(
        (p.relative_to(partial), p.read_bytes()) for p in partial.rglob("*") if p.is_file()
    )
    with pytest.raises(md.OutputError, match="another request or image; it was left untouched"):
        to_ome_zarr(other, target, resume=True)  # another render's unfinished store
    after = sorted(
        (p.relative_to(partial), p.read_bytes()) for p in partial.rglob("*") if p.is_file()
    )
    assert after == before
    result = to_ome_zarr(other, target, overwrite=True)  # starting again trusts nothing
    assert result.chunks_skipped == 0


@pytest.mark.slow
def test_export_on_a_local_cluster_survives_a_killed_worker(tmp_path) -> None:
    import signal
    import threading
    import time

    distributed = pytest.importorskip("distributed")
    source = SyntheticSource(3072, 2048, 2, tile=256, delay_s=0.03)  # 96 chunks, ~3 s
    request = md.parse_request(
        "/0/0/0/?c=1|0:65535$FF0000,2|0:65535$00FFFF&region=0,0,3072,2048&max_size=5000"
    )
    rendering = md.render(source, request, align="output", chunk_size=256)
    expected = expected_levels(rendering.compute(scheduler="threads"), 5)
    with (  # its own cluster: the test kills one of its workers
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=2,
            processes=True,
            dashboard_address=":0",  # any free port: the session cluster may hold 8787
            host="127.0.0.1",
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        outcome: dict[str, object] = {}

        def export() -> None:
            try:
                outcome["result"] = to_ome_zarr(
                    rendering, tmp_path / "k.ome.zarr", client=client, prefetch=4
                )
            except Exception as exc:  # reported below
                outcome["error"] = exc

        worker = threading.Thread(target=export)
        worker.start()
        time.sleep(1.0)  # the export is under way
        os.kill(next(iter(pids.values())), signal.SIGKILL)
        worker.join(timeout=300)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["result"].levels == 5
    for got, want in zip(zarr_levels(tmp_path / "k.ome.zarr"), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.slow
def test_ome_tiff_export_on_a_local_cluster(rendering, tmp_path, cluster_client) -> None:
    expected = md.render(rendering.source, rendering.request).compute()
    to_ome_tiff(rendering, tmp_path / "c.ome.tif", client=cluster_client)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "c.ome.tif"), expected)


MEMORY_SCRIPT = """
import sys
import minerva_dask as md
from minerva_dask._demo import SyntheticSource
from minerva_dask.exports import to_ome_tiff
from minerva_dask.exports import to_ome_zarr
source = SyntheticSource({width}, {height}, 4, tile=512)
request = md.parse_request("/0/0/0/?c=1|0:65535$FF0000,2|0:65535$00FF00,3|0:65535$0000FF,"
                           "4|0:65535$FFFFFF&region=0,0,{width},{height}&max_size={height}")
rendering = md.render(source, request, align="output", chunk_size=512)
if sys.argv[1] == "zarr":
    to_ome_zarr(rendering, sys.argv[2], compute_kwargs={{"num_workers": 2}})
else:
    to_ome_tiff(rendering, sys.argv[2], compute_kwargs={{"num_workers": 2}})
# VmHWM: this process image's peak. ru_maxrss would include the parent's RSS at fork time.
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM")))
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["zarr", "tiff"])
def test_peak_memory_stays_under_budget_for_a_slide_larger_than_it(tmp_path, kind) -> None:
    """A 8,192 x 32,768 x 4-channel slide: 2.1 GB of raw pixels (4.5 times the budget), an
    805 MB RGB level 0; the whole export must peak under 480 MB (VmHWM: Python, numpy and
    dask included). Memory follows neither the slide's width nor its height. Measured
    here: OME-TIFF 182 MB (369 MB before its pixel work moved to the workers), OME-Zarr
    287 MB."""
    width, height, budget = 8192, 32768, 480 * 2**20
    output = tmp_path / ("m.ome.zarr" if kind == "zarr" else "m.ome.tif")
    script = MEMORY_SCRIPT.format(width=width, height=height)
    result = subprocess.run(
        [sys.executable, "-c", script, kind, str(output)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    peak = int(result.stdout.split()[-1])
    assert width * height * 4 * 2 > 4 * budget
    assert peak < budget, f"peak RSS {peak / 2**20:.0f} MB"


@pytest.mark.slow
def test_output_errors_are_clear_and_leave_nothing_behind(rendering, tmp_path, moto_server):
    with pytest.raises(md.OutputError, match="does not exist"):
        to_ome_tiff(rendering, tmp_path / "missing" / "x.ome.tif")
    with pytest.raises(md.OutputError, match="does not exist"):
        to_ome_zarr(rendering, tmp_path / "missing" / "x.ome.zarr")
    (tmp_path / "x.ome.tif").write_bytes(b"old")
    with pytest.raises(md.OutputError, match=r"exists; pass overwrite=True \(CLI: --overwrite\)"):
        to_ome_tiff(rendering, tmp_path / "x.ome.tif")  # refused by default, as OME-Zarr is
    assert (tmp_path / "x.ome.tif").read_bytes() == b"old"
    to_ome_tiff(rendering, tmp_path / "x.ome.tif", overwrite=True)
    assert (tmp_path / "x.ome.tif").read_bytes()[:4] in (b"II*\x00", b"II+\x00")
    to_ome_zarr(rendering, tmp_path / "y.ome.zarr")
    with pytest.raises(md.OutputError, match=r"exists; pass overwrite=True \(CLI: --overwrite\)"):
        to_ome_zarr(rendering, tmp_path / "y.ome.zarr")
    with pytest.raises(
        md.OutputError, match=r"cannot tell the output format.*format='ome-tiff' \(CLI: --format"
    ):
        md.crop(REQUEST, tmp_path / "x.jpg", image=rendering.source)
    with pytest.raises(md.OutputError, match="bucket 'no-such-bucket' does not exist"):
        to_ome_zarr(
            rendering,
            "s3://no-such-bucket/x.ome.zarr",
            storage_options={"client_kwargs": {"endpoint_url": moto_server}},
        )
    failing = md.render(
        FailingSource(rendering.source, 0), rendering.request, align="output", chunk_size=256
    )
    with pytest.raises(OSError, match="the network went away"):
        to_ome_tiff(failing, tmp_path / "f.ome.tif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.ome.tif", "y.ome.zarr"]


@pytest.mark.slow
def test_ome_zarr_on_s3(rendering, moto_server) -> None:
    s3fs = pytest.importorskip("s3fs")
    options = {"client_kwargs": {"endpoint_url": moto_server}}
    s3fs.S3FileSystem(**options).makedirs("exports", exist_ok=True)
    to_ome_zarr(rendering, "s3://exports/slide.ome.zarr", storage_options=options)
    reread = md.open_image("s3://exports/slide.ome.zarr", storage_options=options)
    got = md.sources.read_level(reread, 0)
    expected = md.render(rendering.source, rendering.request).compute()
    np.testing.assert_array_equal(np.moveaxis(got, 0, 2), expected)


@pytest.mark.slow
def test_cli_exports_by_file_name_with_progress(tiny_ome_tiff, tmp_path, capsys) -> None:
    args = ["crop", REQUEST, "--image", str(tiny_ome_tiff)]
    assert main([*args, "-o", str(tmp_path / "a.ome.tiff")]) == 0
    err = capsys.readouterr().err
    assert "OME-TIFF:" in err and "tiles/s" in err and "Wrote" in err
    assert main([*args, "-o", str(tmp_path / "a.ome.tiff")]) == 2
    assert "exists" in capsys.readouterr().err
    assert main([*args, "-o", str(tmp_path / "a.ome.tiff"), "--overwrite", "-q"]) == 0
    assert main([*args, "-o", str(tmp_path / "b.zarr"), "--zarr-version", "0.4", "-q"]) == 0
    assert dict(zarr.open_group(str(tmp_path / "b.zarr"), mode="r").attrs)["multiscales"]
    assert main([*args, "-o", str(tmp_path / "c.bin"), "--format", "ome-zarr", "-q"]) == 0


def test_downsampling_repeats_odd_edges() -> None:
    block = np.arange(15, dtype=np.uint8).reshape(3, 5, 1)
    assert downsample_2x(block)[..., 0].tolist() == [[3, 5, 7], [11, 13, 14]]


def test_synthetic_source_pickles() -> None:
    import pickle

    source = SyntheticSource(5000, 3000, 2, tile=512)
    assert pickle.loads(pickle.dumps(source)).info.levels[-1].width <= 512
