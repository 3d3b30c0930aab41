"""``./run bench cluster_scaling [SIDE]``: one OME-Zarr export, threads vs LocalClusters.

A ``SIDE`` x ``SIDE`` (default 8192) 8-channel synthetic slide, rendered whole at full
resolution and written as sharded NGFF 0.5 to a temporary folder: on the threaded
scheduler (2 threads), and on ``LocalCluster``s of 1 x 2 and 2 x 1 worker processes x
threads (start-up timed apart). Seconds and tiles per second of the export.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time


def main() -> None:
    import distributed

    import minerva_dask as md
    from minerva_dask._demo import SyntheticSource
    from minerva_dask.exports import to_ome_zarr

    side = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    source = SyntheticSource(side, side, 8, tile=1024)
    spec = ",".join(f"{c + 1}|0:65535$FF00FF" for c in range(8))
    request = md.parse_request(f"/0/0/0/?c={spec}&region=0,0,{side},{side}&max_size={side}")
    folder = tempfile.mkdtemp()
    print(f"{side} x {side} px, 8 channels, sharded OME-Zarr 0.5")
    print("| where | start-up s | export s | tiles/s |")
    print("| --- | --- | --- | --- |")
    try:
        for workers, threads in ((0, 2), (1, 2), (2, 1)):
            started = time.perf_counter()
            cluster = client = None
            if workers:
                cluster = distributed.LocalCluster(
                    n_workers=workers,
                    threads_per_worker=threads,
                    processes=True,
                    dashboard_address=":0",
                    host="127.0.0.1",
                    silence_logs=50,
                )
                client = distributed.Client(cluster)
            up = time.perf_counter() - started
            rendering = md.render(source, request, align="output", chunk_size=1024)
            started = time.perf_counter()
            result = to_ome_zarr(
                rendering,
                f"{folder}/{workers}.ome.zarr",
                client=client,
                compute_kwargs=None if client else {"num_workers": threads},
            )
            took = time.perf_counter() - started
            where = f"LocalCluster {workers} x {threads}" if workers else f"threads ({threads})"
            print(f"| {where} | {up:.1f} | {took:.1f} | {result.chunks_written / took:.1f} |")
            if client is not None:
                client.close()
                cluster.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
