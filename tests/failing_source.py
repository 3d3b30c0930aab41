"""A source that fails part-way: an export interrupted by a network gone away."""

from __future__ import annotations

from minerva_dask.sources.base import SourceBase


class FailingSource(SourceBase):
    """Wraps a source; reads at y >= fail_from_y fail (an export interrupted part-way)."""

    def __init__(self, source, fail_from_y: int) -> None:
        self.inner, self.fail_from_y = source, fail_from_y
        self.info = source.info

    def __dask_tokenize__(self):
        return self.inner.__dask_tokenize__()  # the same render: resume may reuse its blocks

    def channels_per_read(self, level):  # reads as the wrapped source does
        return self.inner.channels_per_read(level)

    def read_region(self, level, rect, channels, *, z=0, t=0):
        if rect.y >= self.fail_from_y:
            raise OSError("the network went away")
        return self.inner.read_region(level, rect, channels, z=z, t=t)

    def close(self) -> None:
        pass
