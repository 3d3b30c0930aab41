"""Paths and fsspec URLs: one place that tells local from remote and checks existence."""

from __future__ import annotations

import os
from typing import Any

from ..errors import SourceError, SourceNotFoundError

__all__ = [
    "REMOTE_CONCURRENCY",
    "exists_or_raise",
    "is_url",
    "local_path",
    "redact_url",
    "remote_concurrency",
]


# Reads a remote file source keeps in flight (threads on the threaded scheduler): range
# requests to an object store or web server take tens of milliseconds each.
REMOTE_CONCURRENCY = 16


def remote_concurrency(ref: str) -> int | None:
    """Reads to keep in flight for ``ref``: many when remote, ``None`` (the cores) when local."""
    return REMOTE_CONCURRENCY if is_url(ref) else None


def is_url(ref: str) -> bool:
    """Whether ``ref`` names a remote location (``s3://``, ``http://``, ...), not a path."""
    head, sep, _ = str(ref).partition("://")
    return bool(sep) and head.isalnum() and head.lower() != "file" and len(head) > 1


def local_path(ref: str | os.PathLike[str]) -> str:
    """A local filesystem path for ``ref`` (strips ``file://``)."""
    text = os.fspath(ref)
    return text[len("file://") :] if text.startswith("file://") else text


def redact_url(url: str) -> str:
    """``url`` without user info or query string, safe for messages and logs.

    >>> redact_url("https://user:secret@host/a.tif?X-Amz-Signature=abc")
    'https://host/a.tif'
    """
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def exists_or_raise(ref: str, storage_options: dict[str, Any] | None = None) -> None:
    """Raise :class:`SourceNotFoundError` naming ``ref`` when nothing is there."""
    if not is_url(ref):
        path = local_path(ref)
        if not os.path.exists(path):
            raise SourceNotFoundError(f"no such file or directory: {path}")
        return
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(ref, **(storage_options or {}))
        found = fs.exists(path)
    except (ImportError, ValueError) as exc:
        raise SourceError(f"cannot open {redact_url(ref)}: {exc}") from None
    except OSError as exc:
        raise SourceError(f"cannot reach {redact_url(ref)}: {exc}") from None
    if not found:
        raise SourceNotFoundError(f"nothing found at {redact_url(ref)}")
