"""Local paths and URLs: the one test of which is which, for sources and writers alike.

Standard library only, nothing of ours: every layer may import it.
"""

from __future__ import annotations

import os

__all__ = ["is_url", "local_path"]


def is_url(ref: str | os.PathLike[str]) -> bool:
    """Whether ``ref`` names a remote location (``s3://``, ``http://``, ...), not a path
    (a ``file://`` URL is a path).

    >>> is_url("s3://b/x.zarr"), is_url("file:///tmp/x"), is_url("C://x"), is_url("x.png")
    (True, False, False, False)
    """
    head, sep, _ = os.fspath(ref).partition("://")
    return bool(sep) and head.isalnum() and head.lower() != "file" and len(head) > 1


def local_path(ref: str | os.PathLike[str]) -> str:
    """A local filesystem path for ``ref`` (strips ``file://``)."""
    text = os.fspath(ref)
    return text[len("file://") :] if text.startswith("file://") else text
