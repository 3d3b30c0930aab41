"""Keep a long export's memory flat: big arrays go back to the system when freed.

glibc's malloc serves an allocation above its mmap threshold with its own ``mmap``,
returned to the system by ``free``; below it, from heaps (one per thread, up to 8 per
core) that fragment and rarely shrink. The threshold starts at 128 kB but rises, up to
32 MB, each time such a block is freed, so after the first freed chunk an export's
chunk-sized arrays (composites of 12 MB, shard pieces) come from the heaps, and a
writing process's peak RSS grew with the slide (8 channels, sharded OME-Zarr: 8,192 px
240 MiB, 16,384 px 344 MiB). Fixing the threshold at 4 MiB (``mallopt(M_MMAP_THRESHOLD)``,
which also stops it rising) holds it flat: 224 MiB at 16,384 and at 32,768 px. 1 MiB
held it lower (139-186 MiB) but cost 40-50% more time in page faults; 4 MiB costs none
measurable (bench/RESULTS.md, "OME-Zarr memory"). Linux with glibc only; a
``MALLOC_MMAP_THRESHOLD_`` set in the environment is the user's and is kept.

The OME-TIFF writer wants the opposite (:func:`reuse_freed_memory`): its tasks hold a
block's render buffers and compressed tiles only, never a shard, so its peak was flat
with glibc's defaults, but every block's arrays of 32 MB and more were mmapped afresh
and every freed heap top trimmed, then faulted back in: a third of its CPU time was the
kernel's (357,000 page faults at 8,192 px, 15 s of 47 at 32,768). A fixed 64 MiB mmap
threshold and 128 MiB trim threshold keep those pages: 36,000 faults, 10-28 % less CPU,
peak 238 / 239 MB at 16,384 / 32,768 px (bench/RESULTS.md, "Export throughput").
Either call sets the process's mode; the last one called wins.
"""

from __future__ import annotations

import os
import sys

__all__ = ["MMAP_THRESHOLD", "REUSE_MMAP_THRESHOLD", "keep_heap_flat", "reuse_freed_memory"]

MMAP_THRESHOLD = 4 << 20
REUSE_MMAP_THRESHOLD = 64 << 20  # and a trim threshold of twice that
_M_TRIM_THRESHOLD = -1  # glibc's malloc.h
_M_MMAP_THRESHOLD = -3
_ENVIRONMENT = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_mode: str | None = None


def keep_heap_flat() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD` (and its trim threshold at
    glibc's default, 128 kB, in case :func:`reuse_freed_memory` raised it); whether it is
    in effect (``False`` off glibc, or when the environment sets either)."""
    return _set("flat", {_M_MMAP_THRESHOLD: MMAP_THRESHOLD, _M_TRIM_THRESHOLD: 128 << 10})


def reuse_freed_memory() -> bool:
    """Fix glibc's mmap threshold at :data:`REUSE_MMAP_THRESHOLD` and its trim threshold
    at twice that: freed block-sized buffers are reused, not returned
    and faulted in again; whether it is in effect."""
    return _set(
        "reuse",
        {_M_MMAP_THRESHOLD: REUSE_MMAP_THRESHOLD, _M_TRIM_THRESHOLD: 2 * REUSE_MMAP_THRESHOLD},
    )


def _set(mode: str, options: dict[int, int]) -> bool:
    global _mode
    if _mode == mode:
        return True
    if not sys.platform.startswith("linux") or any(k in os.environ for k in _ENVIRONMENT):
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        done = all(libc.mallopt(option, value) for option, value in options.items())
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    _mode = mode if done else None
    return done
