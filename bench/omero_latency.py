"""Latency hiding against an OMERO server: tiles per second at 0, 20 and 100 ms per request.

A whole-slide-sized request (a 100,000 x 80,000 procedural image, 3 channels, rendered at
full resolution over an 8192 x 8192 region in 512-pixel tiles: 256 tile requests) against
the emulating OMERO server in its own process, with injected latency. Goal: tiles/s at
20 and 100 ms >= 0.8 x the zero-latency figure.

Run: ./run bench omero_latency [--tiles-side 512] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

import minerva_dask as md

GOAL = 0.8


def _serve(latency_s: float, queue: multiprocessing.Queue, stop: multiprocessing.Event) -> None:
    from tests.servers.omero import Faults, OmeroServer, procedural_image

    image = procedural_image(100_000, 80_000, size_c=3, levels=7, tile=(512, 512))
    with OmeroServer({1: image}, public=True, faults=Faults(latency_s=latency_s)) as server:
        queue.put(server.url)
        stop.wait()


def _measure(latency_s: float, side: int, concurrency: int, region: int) -> tuple[float, int]:
    queue: multiprocessing.Queue = multiprocessing.Queue()
    stop = multiprocessing.Event()
    process = multiprocessing.Process(target=_serve, args=(latency_s, queue, stop), daemon=True)
    process.start()
    try:
        url = queue.get(timeout=60)
        source = md.open_omero(url, 1, tile_size=side, concurrency=concurrency)
        request = md.parse_request(
            f"/1/0/0/?c=1|0:65535$FF0000,2|0:65535$00FF00,3|0:65535$0000FF"
            f"&region=20000,20000,{region},{region}&max_size={region}"
        )
        rendering = md.render(source, request)
        started = time.perf_counter()
        rendering.compute()
        elapsed = time.perf_counter() - started
        return elapsed, rendering.data.npartitions
    finally:
        stop.set()
        process.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tile-side", type=int, default=512)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--region", type=int, default=8192)
    args = parser.parse_args()
    print(
        f"{args.region}^2 px at full resolution, {args.tile_side} px tiles, "
        f"{args.concurrency} tiles in flight"
    )
    baseline = None
    for latency_ms in (0, 20, 100):
        elapsed, tiles = _measure(latency_ms / 1000, args.tile_side, args.concurrency, args.region)
        rate = tiles / elapsed
        baseline = baseline or rate
        verdict = (
            ""
            if latency_ms == 0
            else (
                f"  ratio {rate / baseline:.2f} (goal >= {GOAL}: "
                f"{'met' if rate / baseline >= GOAL else 'MISSED'})"
            )
        )
        print(
            f"latency {latency_ms:4d} ms: {tiles} tiles in {elapsed:6.2f} s = "
            f"{rate:7.1f} tiles/s{verdict}"
        )


if __name__ == "__main__":
    main()
