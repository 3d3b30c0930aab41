"""Whole-slide export: an 8-channel synthetic slide to OME-Zarr and OME-TIFF at full
resolution, with 1..N dask workers; time, peak RSS of the client and of the workers, MB/s.

Each configuration runs in a fresh process so peaks do not mix. Goals (issue 5): client
< 1 GB whatever the slide size; workers bounded by their memory limit; speed-up >= 12x at
16 workers on the 16-core device machine.

Run: ./run bench export [--size 32768] [--workers 1 2] [--formats zarr tiff]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, sys, time
import minerva_dask as md
from minerva_dask._demo import SyntheticSource
from minerva_dask.api import compute_context
size, workers, kind, target = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
source = SyntheticSource(size, size, 8, tile=1024)
channels = ",".join(f"{i + 1}|0:65535${c}" for i, c in enumerate(
    ["0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF", "808080"]))
request = md.parse_request(f"/0/0/0/?c={channels}&region=0,0,{size},{size}&max_size={size}")
chunk = 512 if kind == "tiff" else 1024
rendering = md.render(source, request, align="output", chunk_size=chunk)
def peak():  # VmHWM: this process image's peak RSS (ru_maxrss would count the parent's)
    return next(int(line.split()[1]) * 1024 for line in open("/proc/self/status")
                if line.startswith("VmHWM"))
with compute_context(local_cluster=workers, memory_limit="3GB") as client:
    started = time.perf_counter()
    if kind == "zarr":
        from minerva_dask.writers.ome_zarr import to_ome_zarr
        result = to_ome_zarr(rendering, target, client=client, prefetch=2 * workers)
    else:
        from minerva_dask.writers.ome_tiff import to_ome_tiff
        result = to_ome_tiff(rendering, target, client=client, prefetch=2 * workers)
    elapsed = time.perf_counter() - started
    worker_peaks = client.run(peak)
print(json.dumps({"elapsed_s": elapsed, "client_peak": peak(),
                  "worker_peak": max(worker_peaks.values()), "levels": result.levels}))
"""


def _size_of(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=32768)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--formats", nargs="+", default=["zarr", "tiff"])
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="minerva-dask-bench-")
    rgb_mb = args.size * args.size * 3 / 1e6
    print(f"8 channels, {args.size}^2 px, RGB level 0 = {rgb_mb:.0f} MB; {os.cpu_count()} cores")
    print(
        f"{'format':6} {'workers':>7} {'seconds':>8} {'MB/s':>7} {'client MB':>9} "
        f"{'worker MB':>9} {'output MB':>9} {'speed-up':>8}"
    )
    try:
        for kind in args.formats:
            first = None
            for workers in args.workers:
                target = os.path.join(
                    folder, f"{kind}-{workers}." + ("ome.zarr" if kind == "zarr" else "ome.tif")
                )
                out = subprocess.run(
                    [sys.executable, "-c", CHILD, str(args.size), str(workers), kind, target],
                    capture_output=True,
                    text=True,
                )
                if out.returncode:
                    print(out.stderr[-2000:])
                    raise SystemExit(1)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                first = first or row["elapsed_s"]
                print(
                    f"{kind:6} {workers:7d} {row['elapsed_s']:8.1f} "
                    f"{rgb_mb / row['elapsed_s']:7.1f} {row['client_peak'] / 2**20:9.0f} "
                    f"{row['worker_peak'] / 2**20:9.0f} {_size_of(target) / 1e6:9.0f} "
                    f"{first / row['elapsed_s']:8.2f}",
                    flush=True,
                )
                shutil.rmtree(target, ignore_errors=True)
                if os.path.exists(target):
                    os.unlink(target)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
