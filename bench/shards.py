"""``./run bench shards``: OME-Zarr objects and write times per chunks-per-shard side.

A prerendered ``(y, x, 3)`` uint8 image (a smooth gradient with noise, compressing
like a rendered slide; rendering left out, so the times are the store's) is exported
as NGFF 0.5 with 1024-px chunks and ``shard`` in 1, 2, 4, 8 to local disk and to S3
(moto in server mode on 127.0.0.1, in this process), on the threaded scheduler. Objects
for a 65,536-px square slide are computed from the same layout.

    python -m bench shards [SIDE]     # SIDE: image side in px (default 8192)
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
import time

import numpy as np

CHUNK = 1024
SHARDS = (1, 2, 4, 8)


def objects(side: int, shard: int) -> int:
    """Stored objects (data keys) of every level of a ``side``-px square export."""
    total, length = 0, side
    while True:
        total += math.ceil(length / (CHUNK * shard)) ** 2
        if length <= CHUNK:
            return total
        length = math.ceil(length / 2)


def image(side: int):
    import dask.array as da

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:side, 0:side]
    base = ((x + y) * (255 / (2 * side))).astype(np.uint8)
    noise = rng.integers(0, 24, (side, side), dtype=np.uint8)
    rgb = np.stack([base, base // 2 + noise, 255 - base], axis=2)
    return da.from_array(rgb, chunks=(CHUNK, CHUNK, 3))


def main() -> None:
    import logging

    import s3fs
    from moto.server import ThreadedMotoServer

    from minerva_dask.writers.ome_zarr import to_ome_zarr

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    side = int(sys.argv[1]) if len(sys.argv) > 1 else 8192
    data = image(side)
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{server._server.server_port}"
    options = {"client_kwargs": {"endpoint_url": endpoint}}
    fs = s3fs.S3FileSystem(**options)
    fs.mkdir("bench")
    folder = tempfile.mkdtemp()
    print(f"{side} x {side} px, {CHUNK}-px chunks; objects at 65,536 px computed")
    print("| shard | objects here | objects at 65,536 px | local s | moto S3 s | MB |")
    print("| --- | --- | --- | --- | --- | --- |")
    try:
        for shard in SHARDS:
            local = os.path.join(folder, f"s{shard}.ome.zarr")
            started = time.perf_counter()
            result = to_ome_zarr(data, local, shard=shard)
            local_s = time.perf_counter() - started
            found = sum(len(files) for root, _, files in os.walk(local) if f"{os.sep}c" in root)
            started = time.perf_counter()
            to_ome_zarr(data, f"s3://bench/s{shard}.ome.zarr", shard=shard, storage_options=options)
            s3_s = time.perf_counter() - started
            print(
                f"| {shard} | {found} (at most {objects(side, shard)}) | "
                f"{objects(65536, shard)} | {local_s:.2f} | {s3_s:.2f} | "
                f"{result.size_bytes / 1e6:.1f} |"
            )
            shutil.rmtree(local)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        server.stop()


if __name__ == "__main__":
    main()
