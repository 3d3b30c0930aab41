"""The behaviour every source must have, as a reusable test class (like zarr's StoreTests).

A subclass provides ``make_source()`` and ``expected_levels()`` (each level's whole
``(c, y, x)`` array, read independently); these tests then check metadata, region reads
at every edge, channel subsets, pickling and handle hygiene.
"""

from __future__ import annotations

import os
import pickle

import numpy as np

from minerva_dask.geometry import Rect
from minerva_dask.sources import Source


def _cached(source: Source) -> bool:
    """Whether this process holds an open handle for ``source``."""
    from minerva_dask.sources.base import _OPEN_HANDLES

    return source._handle_key() in _OPEN_HANDLES._entries  # type: ignore[attr-defined]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


class SourceContract:
    def make_source(self) -> Source:
        raise NotImplementedError

    def expected_levels(self) -> list[np.ndarray]:
        raise NotImplementedError

    def test_info_describes_the_levels(self) -> None:
        source = self.make_source()
        info = source.info
        expected = self.expected_levels()
        assert len(info.levels) == len(expected)
        assert info.levels[0].downsample == (1.0, 1.0)
        for spec, array in zip(info.levels, expected, strict=True):
            assert (info.size_c, spec.height, spec.width) == array.shape
            assert spec.tile_width >= 1
            assert spec.tile_height >= 1
        assert np.dtype(info.dtype) == expected[0].dtype
        assert len(info.channels) == info.size_c
        for channel in info.channels:
            assert channel.window[0] <= channel.window[1]
            assert all(0 <= v <= 1 for v in channel.color)

    def test_every_level_reads_exactly(self) -> None:
        source = self.make_source()
        for level, expected in enumerate(self.expected_levels()):
            spec = source.info.levels[level]
            whole = source.read_region(
                level, Rect(0, 0, spec.width, spec.height), range(source.info.size_c)
            )
            assert whole.dtype == expected.dtype
            np.testing.assert_array_equal(whole, expected)

    def test_edge_and_tiny_regions(self) -> None:
        source = self.make_source()
        expected = self.expected_levels()[0]
        _, height, width = expected.shape
        spec = source.info.levels[0]
        corner_w, corner_h = min(spec.tile_width, width), min(spec.tile_height, height)
        for x, y, w, h in [
            (0, 0, 1, 1),
            (width - 1, height - 1, 1, 1),
            (width - corner_w, height - corner_h, corner_w, corner_h),
            (width // 3, height // 2, max(1, width // 3), max(1, height // 3)),
        ]:
            block = source.read_region(0, Rect(x, y, w, h), [0])
            np.testing.assert_array_equal(block, expected[:1, y : y + h, x : x + w])

    def test_channel_subsets_come_back_in_the_order_asked(self) -> None:
        source = self.make_source()
        expected = self.expected_levels()[-1]
        size_c = source.info.size_c
        order = [size_c - 1, 0] if size_c > 1 else [0]
        spec = source.info.levels[-1]
        block = source.read_region(
            len(source.info.levels) - 1, Rect(0, 0, spec.width, spec.height), order
        )
        np.testing.assert_array_equal(block, expected[order])

    def test_pickles_and_reads_after_unpickling(self) -> None:
        """The clone reads as a worker would: this process's handle closed first, so it
        opens its own from the pickled configuration."""
        source = self.make_source()
        clone = pickle.loads(pickle.dumps(source))
        source.close()  # the per-process handle cache holds nothing for it now
        assert not _cached(clone)
        spec = clone.info.levels[-1]
        rect = Rect(0, 0, spec.width, spec.height)
        last = len(clone.info.levels) - 1
        expected = self.expected_levels()[last][:1]
        np.testing.assert_array_equal(clone.read_region(last, rect, [0]), expected)
        assert _cached(clone)  # it opened one of its own
        clone.close()

    def test_close_releases_file_handles(self) -> None:
        before = _open_fds()
        source = self.make_source()
        source.read_region(0, Rect(0, 0, 1, 1), [0])
        assert _cached(source)
        source.close()
        assert not _cached(source)  # close() really let go of the handle
        assert _open_fds() <= before
