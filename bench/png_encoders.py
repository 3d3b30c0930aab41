"""PNG encoders on a rendered composite: time and size of ours (row bands deflated with
zlib-ng on 1 and on all cores) against imagecodecs (libpng) and Pillow, at equal levels.

Run: ./run bench png_encoders
"""

from __future__ import annotations

import io
import os
import time

import imagecodecs
import numpy as np

import minerva_dask as md
from minerva_dask.writers.png import encode_png


def _median_time(fn, repeats: int = 3) -> tuple[float, int]:
    times, size = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        size = len(fn())
        times.append(time.perf_counter() - started)
    return float(np.median(times)), size


def main() -> None:
    source = md.open_image(md.demo_image_path())
    request = md.parse_request(
        "/0/0/0/?c=1|600:24000$0000FF,2|400:9000$00FF00,3|700:15000$FF0000"
        "&region=0,0,4096,3072&max_size=5000"
    )
    rgb = md.render(source, request).compute()
    print(f"image {rgb.shape[1]} x {rgb.shape[0]} RGB, {rgb.nbytes / 1e6:.0f} MB raw")
    rows = []
    cores = os.cpu_count() or 1
    for level in (1, 3, 6):
        for threads in sorted({1, cores}):
            rows.append(
                (
                    f"ours level {level}, {threads} thr",
                    *_median_time(
                        lambda lv=level, th=threads: encode_png(rgb, level=lv, threads=th)
                    ),
                )
            )
    for level in (1, 3, 6):
        rows.append(
            (
                f"imagecodecs level {level}",
                *_median_time(lambda lv=level: imagecodecs.png_encode(rgb, level=lv)),
            )
        )
    try:
        from PIL import Image
    except ImportError:
        Image = None
    if Image is not None:
        for level in (1, 3, 6):

            def pil(lv=level) -> bytes:
                buf = io.BytesIO()
                Image.fromarray(rgb).save(buf, "PNG", compress_level=lv)
                return buf.getvalue()

            rows.append((f"Pillow level {level}", *_median_time(pil)))
    reference = dict((name, size) for name, _, size in rows)["imagecodecs level 6"]
    print(f"{'encoder':24} {'median s':>9} {'MB':>7} {'size vs imagecodecs-6':>22}")
    for name, seconds, size in rows:
        print(f"{name:24} {seconds:9.3f} {size / 1e6:7.2f} {size / reference:21.2f}x")
    print(
        "(imagecodecs = libpng, adaptive filters; ours: per-row None/Sub/Up filters, "
        "or a band left unfiltered where a trial deflate says that is smaller)"
    )


if __name__ == "__main__":
    main()
