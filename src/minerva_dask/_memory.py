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
"""

from __future__ import annotations

import os
import sys

__all__ = ["MMAP_THRESHOLD", "keep_heap_flat"]

MMAP_THRESHOLD = 4 << 20
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h
_done = False


def keep_heap_flat() -> bool:
    """Fix glibc's mmap threshold at :data:`MMAP_THRESHOLD`, once per process; whether
    it is in effect (``False`` off glibc, or when the environment sets it)."""
    global _done
    if _done:
        return True
    if not sys.platform.startswith("linux") or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        _done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    return _done
