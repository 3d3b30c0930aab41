"""Writers: rendered arrays to files. They never see a source, only arrays and metadata."""

from __future__ import annotations

from .png import encode_png, to_png

__all__ = ["encode_png", "to_png"]
