"""Whole-slide export (issue 17): minerva-dask OME-TIFF and OME-Zarr against pyvips, 1 vs
2 workers, and the writing process's peak RSS on wide and tall slides.

Three parts, each contender a fresh process (whole process: start-up, reading, rendering,
writing), peak RSS from ``/usr/bin/time`` (the process, not its parent):

``peers``  the bench pyramid (8 channels, uint16, deflate; 8192^2 as ``bench/peers.py``
           makes it, 32768^2 made from its level-0 tiles repeated 4 x 4, one level),
           exported at full resolution with the same 8-channel request by the
           minerva-dask CLI to ``.ome.tif`` and ``.ome.zarr`` (threaded scheduler), and by
           pyvips: the same additive composite, then ``tiffsave(pyramid=True, tile=True,
           compression="deflate")`` or ``dzsave``. Contenders alternate, round by round;
           medians. Goals: OME-TIFF <= 0.6 x and OME-Zarr <= 0.5 x pyvips' tiffsave time.
``workers`` the same export on a LocalCluster of 1 then 2 worker processes, both formats,
           alternating; the export call alone (the cluster is started before the
           clock), wall and CPU seconds (workers + client). One thread per worker by
           default (``--threads``): 1 worker of 2 threads already has both cores of a
           2-core machine, so "1 vs 2 workers" of 2 threads each (as ``--local-cluster``
           makes them) measures oversubscription, not scaling. Goal: 2 workers >= 1.6 x
           faster.
``peaks``  synthetic 8-channel slides (no storage), threaded scheduler, the writing
           process's VmHWM: square, wide (side x 4096) and tall (4096 x side) at 16k, 32k
           and 64k. Goals: <= 300 MB at 64k^2, within 20 % of 16k.

Run: ./run bench export [--quick] [--parts peers workers peaks] [--sizes 8192 32768]
``--quick`` (about 2-3 minutes on 2 cores): peers at 4096^2, one round; workers at 4096^2;
peaks of wide and tall slides 4k and 16k long, 1024 across.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers import COLOURS, DATA, WINDOW, request_url, write_pyramid

MINERVA = "import sys; from minerva_dask.cli import main; sys.exit(main(sys.argv[1:]))"
PYVIPS = r"""
import sys, json
import pyvips
path, out, mode, spec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
acc = None
for c in range(spec["channels"]):
    plane = pyvips.Image.new_from_file(path, page=c, access="sequential").cast("float")
    n = (plane - spec["window"][0]) / (spec["window"][1] - spec["window"][0])
    n = (n < 0).ifthenelse(0, n)
    n = (n > 1).ifthenelse(1, n)
    rgb = [int(spec["colours"][c][i:i + 2], 16) / 255 for i in (0, 2, 4)]
    term = n.bandjoin([n, n]) * rgb
    acc = term if acc is None else acc + term
rgb8 = ((acc > 1).ifthenelse(1, acc) * 255).rint().cast("uchar")
if mode == "tiffsave":
    rgb8.tiffsave(out, pyramid=True, tile=True, compression="deflate")
else:
    rgb8.dzsave(out)
"""
PEAK = r"""
import sys
import minerva_dask as md
from minerva_dask._demo import SyntheticSource
from minerva_dask.exports import to_ome_tiff, to_ome_zarr
kind, out, width, height = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
source = SyntheticSource(width, height, 8, tile=1024)
channels = ",".join(f"{i + 1}|0:65535${c}" for i, c in enumerate(
    ["0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF", "808080"]))
request = md.parse_request(
    f"/0/0/0/?c={channels}&region=0,0,{width},{height}&max_size={max(width, height)}")
rendering = md.render(source, request, align="output", chunk_size=1024)
(to_ome_zarr if kind == "zarr" else to_ome_tiff)(rendering, out)
print(next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
           if line.startswith("VmHWM")))
"""
CLUSTER = r"""
import logging, resource, sys, time
import distributed
import minerva_dask as md
from minerva_dask.exports import to_ome_tiff, to_ome_zarr
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
def main():
    image, url, out, kind, workers, threads = sys.argv[1:7]
    rendering = md.render(md.open_image(image), md.parse_request(url), align="output",
                          chunk_size=1024)
    # compute_context's LocalCluster, but threads per worker chosen by the bench
    with distributed.LocalCluster(n_workers=int(workers), threads_per_worker=int(threads),
                                  processes=True, dashboard_address=":0",
                                  silence_logs=logging.CRITICAL) as cluster, \
            distributed.Client(cluster) as client:
        before = sum(client.run(cpu).values()) + cpu()
        started = time.perf_counter()  # the export alone: the cluster is up
        (to_ome_tiff if kind == "tiff" else to_ome_zarr)(rendering, out, client=client)
        seconds = time.perf_counter() - started
        spent = sum(client.run(cpu).values()) + cpu() - before
        print(seconds, spent)
if __name__ == "__main__":
    main()
"""
CONTENDERS = ["md OME-TIFF", "md OME-Zarr", "pyvips tiffsave", "pyvips dzsave"]


def bench_file(side: int) -> Path:
    """The bench pyramid of ``side`` px (4096 and 8192: as bench/peers.py makes them;
    larger: the 8192 one's level-0 tiles repeated, one level), made once."""
    DATA.mkdir(exist_ok=True)
    path = DATA / f"tissue-{side}-8ch.ome.tif"
    if path.exists():
        return path
    print(f"making {path.name} ...", flush=True)
    if side <= 8192:
        return write_pyramid(path, "8ch", scale=8192 // side)
    return _repeated(bench_file(8192), path, side // 8192)


def _repeated(source: Path, target: Path, factor: int) -> Path:
    """``source``'s level 0 repeated ``factor`` x ``factor``: its compressed tiles copied."""
    import numpy as np
    import tifffile

    from minerva_dask.writers._tiff_file import ASCII, RATIONAL, SHORT, TiffTiles

    with tifffile.TiffFile(source) as tif:
        pages = tif.series[0].levels[0].pages
        first = pages[0]
        rows = -(-first.imagelength // first.tilelength)
        cols = -(-first.imagewidth // first.tilewidth)
        height, width = first.imagelength * factor, first.imagewidth * factor
        common = {
            258: (SHORT, [16]),
            259: (SHORT, [int(first.compression)]),
            262: (SHORT, [1]),
            277: (SHORT, [1]),
            282: (RATIONAL, [(1, 1)]),
            283: (RATIONAL, [(1, 1)]),
            284: (SHORT, [1]),
            296: (SHORT, [1]),
            305: (ASCII, "minerva-dask bench"),
            317: (SHORT, [int(first.predictor)]),
        }
        ome = tifffile.OmeXml()
        ome.addimage(
            np.uint16,
            (len(pages), height, width),
            (len(pages), 1, 1, height, width, 1),
            axes="CYX",
            Name=target.name.split(".")[0],
            PhysicalSizeX=0.65,
            PhysicalSizeY=0.65,
        )
        with open(target.with_suffix(".partial"), "wb") as fh:
            sink = TiffTiles(fh, [(height, width)], first.tilelength, len(pages), bigtiff=True)
            for page_index, page in enumerate(pages):
                for index, (offset, count) in enumerate(
                    zip(page.dataoffsets, page.databytecounts, strict=True)
                ):
                    tif.filehandle.seek(offset)
                    data = tif.filehandle.read(count)
                    row, col = divmod(index, cols)
                    for ry in range(factor):
                        for rx in range(factor):
                            sink.add(0, page_index, ry * rows + row, rx * cols + col, data)
            sink.close(lambda level: common, ome.tostring(declaration=True))
    os.replace(target.with_suffix(".partial"), target)
    return target


def run(command: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one whole process."""
    started = time.perf_counter()
    result = subprocess.run(
        ["/usr/bin/time", "-f", "%M", *command], capture_output=True, text=True, env=env
    )
    seconds = time.perf_counter() - started
    if result.returncode:
        raise RuntimeError(f"{command[:4]} failed: {result.stderr[-1500:]}")
    return seconds, int(result.stderr.strip().splitlines()[-1]) / 1024


def _remove(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.unlink(missing_ok=True)


def _commands(name: str, image: Path, side: int, folder: Path, workers: int = 0) -> tuple:
    import json

    url = request_url(8, (0, 0, side, side), side)
    if name.startswith("md"):
        out = folder / ("o.ome.tif" if "TIFF" in name else "o.ome.zarr")
        cluster = ["--local-cluster", str(workers)] if workers else []
        command = [sys.executable, "-c", MINERVA, "crop", url, "--image", str(image)]
        return [*command, "-o", str(out), "-q", *cluster], out
    mode = name.split()[1]
    out = folder / ("o.tif" if mode == "tiffsave" else "o")
    spec = {"channels": 8, "window": WINDOW, "colours": [COLOURS[i] for i in range(8)]}
    return [sys.executable, "-c", PYVIPS, str(image), str(out), mode, json.dumps(spec)], out


def peers(side: int, rounds: int, folder: Path) -> None:
    image = bench_file(side)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    peaks: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for _ in range(rounds):
        for name in CONTENDERS:  # alternating, round by round
            command, out = _commands(name, image, side, folder)
            seconds, peak = run(command)
            times[name].append(seconds)
            peaks[name].append(peak)
            _remove(out)
            _remove(folder / "o_files")
            _remove(folder / "o.dzi")
    base = statistics.median(times["pyvips tiffsave"])
    print(f"\npeers, {side}^2 x 8 channels, full resolution, median of {rounds}:")
    print(f"{'contender':16} {'seconds':>8} {'peak MB':>8} {'x tiffsave':>10}")
    for name in CONTENDERS:
        t = statistics.median(times[name])
        print(f"{name:16} {t:8.2f} {statistics.median(peaks[name]):8.0f} {t / base:10.2f}")
    tiff, zarr = (statistics.median(times[n]) for n in ("md OME-TIFF", "md OME-Zarr"))
    print(
        f"goals: OME-TIFF {tiff / base:.2f} x tiffsave (<= 0.6), OME-Zarr {zarr / base:.2f} "
        f"(<= 0.5), OME-TIFF / OME-Zarr {tiff / zarr:.2f} (<= 1.2)",
        flush=True,
    )


def workers(side: int, counts: list[int], threads: int, rounds: int, folder: Path) -> None:
    """The export call alone (cluster started before the clock), both formats, each
    worker ``threads`` threads; counts alternate within a round. CPU: user + sys of the
    workers and the client during the call (``getrusage`` in each, before and after)."""
    image = bench_file(side)
    url = request_url(8, (0, 0, side, side), side)
    script = folder / "cluster_export.py"  # a file: worker processes re-import __main__
    script.write_text(CLUSTER)
    times: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for _ in range(rounds):
        for kind in ("tiff", "zarr"):
            for count in counts:
                out = folder / ("w.ome.tif" if kind == "tiff" else "w.ome.zarr")
                command = [sys.executable, str(script), str(image), url, str(out), kind]
                result = subprocess.run(
                    [*command, str(count), str(threads)], capture_output=True, text=True
                )
                _remove(out)
                if result.returncode:
                    raise RuntimeError(result.stderr[-1500:])
                seconds, cpu = (float(v) for v in result.stdout.split()[-2:])
                times.setdefault((kind, count), []).append((seconds, cpu))
    print(
        f"\nworkers (LocalCluster, {threads} thread(s) each; export call alone), {side}^2, "
        f"median of {rounds}: wall s / CPU s (workers + client)"
    )
    for kind in ("tiff", "zarr"):
        row = [statistics.median(t for t, _ in times[(kind, c)]) for c in counts]
        cpus = [statistics.median(c for _, c in times[(kind, n)]) for n in counts]
        cells = "  ".join(
            f"{c} workers {t:6.2f} / {u:6.2f}" for c, t, u in zip(counts, row, cpus, strict=True)
        )
        print(f"{kind:5} {cells}  speed-up {row[0] / row[-1]:.2f} (goal >= 1.6)", flush=True)


def peak_table(sides: list[int], across: int, square: bool, folder: Path) -> None:
    shapes = [("wide", s, across) for s in sides] + [("tall", across, s) for s in sides]
    if square:
        shapes = [("square", s, s) for s in sides] + shapes
    print(f"\nwriting process peak (VmHWM, threaded scheduler), 8 channels, across = {across}:")
    print(f"{'shape':7} {'width':>6} {'height':>6} {'OME-TIFF MB':>11} {'OME-Zarr MB':>11}")
    first: dict[tuple[str, str], float] = {}
    for label, width, height in shapes:
        cells = []
        for kind in ("tiff", "zarr"):
            out = folder / ("p.ome.tif" if kind == "tiff" else "p.ome.zarr")
            result = subprocess.run(
                [sys.executable, "-c", PEAK, kind, str(out), str(width), str(height)],
                capture_output=True,
                text=True,
            )
            _remove(out)
            if result.returncode:
                raise RuntimeError(result.stderr[-1500:])
            mb = int(result.stdout.split()[-1]) / 2**20
            base = first.setdefault((label, kind), mb)
            cells.append(f"{mb:6.0f} ({mb / base:4.2f})")
        print(f"{label:7} {width:6d} {height:6d} {cells[0]:>11} {cells[1]:>11}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--parts", nargs="+", default=["peers", "workers", "peaks"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8192, 32768])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--threads", type=int, default=1, help="threads per worker (workers part; default 1)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    sizes, rounds = ([4096], 1) if args.quick else (args.sizes, args.rounds)
    folder = Path(tempfile.mkdtemp(prefix="minerva-dask-bench-export-"))
    uptime = os.getloadavg()
    print(f"{os.cpu_count()} cores, load {uptime[0]:.1f} {uptime[1]:.1f} {uptime[2]:.1f}")
    try:
        if "peers" in args.parts:
            for side in sizes:
                peers(side, rounds, folder)
        if "workers" in args.parts:
            workers(sizes[0], args.workers, args.threads, rounds, folder)
        if "peaks" in args.parts:
            if args.quick:
                peak_table([4096, 16384], 1024, False, folder)
            else:
                peak_table([16384, 32768, 65536], 4096, True, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
