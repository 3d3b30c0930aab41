"""``./run bench zarr_memory SIDE [CHANNELS] [SHARD]``: peak RSS of an OME-Zarr export.

A ``SIDE`` x ``SIDE`` synthetic slide of ``CHANNELS`` (default 8) uint16 channels with
1024-px tiles, rendered whole at full resolution and exported to a temporary folder as
NGFF 0.5 (``SHARD`` chunks per shard side; default the writer's) on the threaded
scheduler with 2 threads, in a fresh process; prints seconds, peak RSS (VmHWM) and the
output's size.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

SCRIPT = """
import shutil, sys, time
import minerva_dask as md
from minerva_dask._demo import SyntheticSource
from minerva_dask.exports import to_ome_zarr
side, channels, shard, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
source = SyntheticSource(side, side, channels, tile=1024)
colors = ["FF0000", "00FF00", "0000FF", "FFFF00", "FF00FF", "00FFFF", "FFFFFF", "808080"]
spec = ",".join(f"{c + 1}|0:65535${colors[c % 8]}" for c in range(channels))
request = md.parse_request(f"/0/0/0/?c={spec}&region=0,0,{side},{side}&max_size={side}")
rendering = md.render(source, request, align="output", chunk_size=1024)
started = time.perf_counter()
result = to_ome_zarr(rendering, out, shard=None if shard == "default" else int(shard),
                     compute_kwargs={"num_workers": 2})
elapsed = time.perf_counter() - started
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(f"{side} px, {channels} ch, shard {shard}: {elapsed:.1f} s, peak RSS {peak / 2**20:.0f} MiB, "
      f"{result.size_bytes / 1e6:.0f} MB")
"""


def main() -> None:
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 16384
    channels = sys.argv[2] if len(sys.argv) > 2 else "8"
    shard = sys.argv[3] if len(sys.argv) > 3 else "default"
    with tempfile.TemporaryDirectory() as folder:
        out = f"{folder}/m.ome.zarr"
        subprocess.run([sys.executable, "-c", SCRIPT, str(side), channels, shard, out], check=True)


if __name__ == "__main__":
    main()
