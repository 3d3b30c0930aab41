"""The behaviour every source must have, as a reusable test class (like zarr's StoreTests).

A subclass provides ``make_source()`` and ``expected_levels()`` (each level's whole
``(c, y, x)`` array, read independently); these tests then check metadata, region reads
at every edge, channel subsets, pickling and handle hygiene.

A source whose server renders its tiles (:func:`~minerva_dask.sources.base.server_rendered`)
gives no raw pixels: its subclass overrides ``read()`` with the read its ``tile_mode``
declares, and ``expected_levels()`` holds what that read gives. The checks that the
declared capabilities say do not apply are skipped, and only those: a composite has no
channel order, and a server-rendered source must refuse ``read_region``.
"""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Sequence

import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.geometry import Rect
from minerva_dask.sources import Source
from minerva_dask.sources.base import server_rendered, tile_mode


def _cached(source: Source) -> bool:
    """Whether this process holds an open handle for ``source``."""
    from minerva_dask.sources.base import _OPEN_HANDLES

    return source._handle_key() in _OPEN_HANDLES._entries  # type: ignore[attr-defined]


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else 0


def _fds_drop_to(count: int, wait_s: float = 3.0) -> bool:
    """Whether this process's open files drop to ``count`` within ``wait_s``: a loopback
    server in this process closes its end of a connection once it sees ours close."""
    deadline = time.monotonic() + wait_s
    while _open_fds() > count:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def unpickled(source: Source) -> Source:
    """``source`` as a dask worker gets it: a pickled copy, with this process's handle for
    it closed first, so the copy must open its own from its configuration."""
    clone = pickle.loads(pickle.dumps(source))
    source.close()
    assert not _cached(clone)
    return clone


class SourceContract:
    def make_source(self) -> Source:
        raise NotImplementedError

    def expected_levels(self) -> list[np.ndarray]:
        raise NotImplementedError

    def read(self, source: Source, level: int, rect: Rect, channels: Sequence[int]) -> np.ndarray:
        """``(c, y, x)`` of ``rect``: raw pixels by default (``read_region``)."""
        return source.read_region(level, rect, channels)

    def expected(self, level: int, channels: Sequence[int]) -> np.ndarray:
        """What ``read`` gives for ``channels`` of the whole ``level``."""
        return self.expected_levels()[level][list(channels)]

    def test_info_describes_the_levels(self) -> None:
        source = self.make_source()
        info = source.info
        expected = self.expected_levels()
        assert len(info.levels) == len(expected)
        assert info.levels[0].downsample == (1.0, 1.0)
        for spec, array in zip(info.levels, expected, strict=True):
            assert (spec.height, spec.width) == array.shape[1:]
            assert spec.tile_width >= 1
            assert spec.tile_height >= 1
        if not server_rendered(source):  # raw pixels: the image's own channels and type
            assert info.size_c == expected[0].shape[0]
            assert np.dtype(info.dtype) == expected[0].dtype
        assert len(info.channels) == info.size_c
        for channel in info.channels:
            assert channel.window[0] <= channel.window[1]
            assert all(0 <= v <= 1 for v in channel.color)

    def test_every_level_reads_exactly(self) -> None:
        source = self.make_source()
        for level, expected in enumerate(self.expected_levels()):
            spec = source.info.levels[level]
            channels = range(source.info.size_c)
            whole = self.read(source, level, Rect(0, 0, spec.width, spec.height), channels)
            assert whole.dtype == expected.dtype
            np.testing.assert_array_equal(whole, self.expected(level, channels))

    def test_edge_and_tiny_regions(self) -> None:
        source = self.make_source()
        expected = self.expected(0, [0])
        _, height, width = expected.shape
        spec = source.info.levels[0]
        corner_w, corner_h = min(spec.tile_width, width), min(spec.tile_height, height)
        for x, y, w, h in [
            (0, 0, 1, 1),
            (width - 1, height - 1, 1, 1),
            (width - corner_w, height - corner_h, corner_w, corner_h),
            (width // 3, height // 2, max(1, width // 3), max(1, height // 3)),
        ]:
            block = self.read(source, 0, Rect(x, y, w, h), [0])
            np.testing.assert_array_equal(block, expected[:, y : y + h, x : x + w])

    def test_channel_subsets_come_back_in_the_order_asked(self) -> None:
        source = self.make_source()
        if tile_mode(source) == "composite":
            pytest.skip("declared tile_mode composite: one RGB image, no channel order")
        size_c = source.info.size_c
        order = [size_c - 1, 0] if size_c > 1 else [0]
        last = len(source.info.levels) - 1
        spec = source.info.levels[last]
        block = self.read(source, last, Rect(0, 0, spec.width, spec.height), order)
        np.testing.assert_array_equal(block, self.expected(last, order))

    def raw_levels(self) -> list[np.ndarray] | None:
        """A server-rendered source's raw pixels per level ``(c, y, x)``, where it can
        read them as well (Minerva's S3 tiles); ``None`` where it refuses (OMERO)."""
        return None

    def test_read_region_gives_raw_pixels_or_refuses_as_declared(self) -> None:
        source = self.make_source()
        if not server_rendered(source):
            assert source.read_region(0, Rect(0, 0, 1, 1), [0]).dtype == source.info.dtype
            return
        raw = self.raw_levels()
        if raw is None:
            with pytest.raises(md.SourceError, match="not raw pixel values"):
                source.read_region(0, Rect(0, 0, 1, 1), [0])
            return
        last = len(raw) - 1
        _, height, width = raw[last].shape
        order = [source.info.size_c - 1, 0]
        block = source.read_region(last, Rect(0, 0, width, height), order)
        assert block.dtype == source.info.dtype
        np.testing.assert_array_equal(block, raw[last][order])

    def test_pickles_and_reads_after_unpickling(self) -> None:
        """The clone reads as a worker would: this process's handle closed first, so it
        opens its own from the pickled configuration."""
        clone = unpickled(self.make_source())
        spec = clone.info.levels[-1]
        rect = Rect(0, 0, spec.width, spec.height)
        last = len(clone.info.levels) - 1
        np.testing.assert_array_equal(self.read(clone, last, rect, [0]), self.expected(last, [0]))
        assert _cached(clone)  # it opened one of its own
        clone.close()

    def test_close_releases_file_handles(self) -> None:
        # one open and close first: what a process sets up once (fsspec's event loop) is
        # not a leak; a leak grows with every open
        self.make_source().close()
        before = _open_fds()
        source = self.make_source()
        self.read(source, 0, Rect(0, 0, 1, 1), [0])
        assert _cached(source)
        source.close()
        assert not _cached(source)  # close() really let go of the handle
        assert _fds_drop_to(before)
