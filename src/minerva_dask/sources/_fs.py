"""Paths and fsspec URLs: one place that tells local from remote and checks existence."""

from __future__ import annotations

import os
from typing import Any

from .. import _redact
from .._paths import is_url, local_path
from ..errors import SourceError, SourceNotFoundError

__all__ = [
    "OWN_OPTIONS",
    "REMOTE_CONCURRENCY",
    "exists_or_raise",
    "file_identity",
    "fs_storage_options",
    "is_url",
    "local_path",
    "redact_url",
    "remote_concurrency",
]


# Reads a remote file source keeps in flight (threads on the threaded scheduler): range
# requests to an object store or web server take tens of milliseconds each.
REMOTE_CONCURRENCY = 16


# Storage options minerva-dask reads itself; fsspec never sees them.
# whole_file_max_bytes: see sources._ranges.WHOLE_FILE_MAX_BYTES.
OWN_OPTIONS = frozenset({"whole_file_max_bytes"})


def remote_concurrency(ref: str) -> int | None:
    """Reads to keep in flight for ``ref``: many when remote, ``None`` (the cores) when local."""
    return REMOTE_CONCURRENCY if is_url(ref) else None


def file_identity(ref: str) -> tuple[int, ...] | None:
    """What tells this local file or store apart from another at the same path: size and
    modification time of a file; of a folder (a zarr store), the modification times of its
    metadata files. ``None`` for a remote location. A resumed export compares it, so a
    file replaced between two runs is not stitched from both."""
    if is_url(ref):
        return None
    path = local_path(ref)
    try:
        if not os.path.isdir(path):
            stat = os.stat(path)
            return (stat.st_size, stat.st_mtime_ns)
        names = ("zarr.json", ".zattrs", ".zgroup", ".zarray")
        found = [os.path.join(path, name) for name in names]
        for entry in os.scandir(path):  # the levels' metadata, one folder down
            if entry.is_dir():
                found += [os.path.join(entry.path, name) for name in names]
        return tuple(os.stat(f).st_mtime_ns for f in sorted(found) if os.path.exists(f))
    except OSError:
        return None


def redact_url(url: str) -> str:
    """``url`` without user info or query string, safe for messages and logs.

    >>> redact_url("https://user:secret@host/a.tif?X-Amz-Signature=abc")
    'https://host/a.tif'
    """
    return _redact.redact_url(url)


def fs_storage_options(ref: str, storage_options: dict[str, Any] | None) -> dict[str, Any]:
    """fsspec options for ``ref`` with the network policy's defaults filled in: connect
    and read timeouts and a whole-request limit for HTTP (aiohttp), timeouts and retries
    for S3 (botocore). What the user gave wins. User info in an HTTP URL is registered
    as a secret."""
    from ._http import RetryPolicy  # the network policy's timeouts (not at import: requests)

    policy = RetryPolicy()
    options = {k: v for k, v in (storage_options or {}).items() if k not in OWN_OPTIONS}
    _redact.register_url_secrets(ref)
    for key in ("key", "secret", "token", "password", "client_secret"):
        _redact.register_secret(options.get(key))
    scheme = ref.partition("://")[0].lower()
    if scheme in ("http", "https"):
        import aiohttp

        client = dict(options.get("client_kwargs") or {})
        client.setdefault(
            "timeout",
            aiohttp.ClientTimeout(
                total=policy.deadline_s,
                sock_connect=policy.connect_timeout_s,
                sock_read=policy.timeout_s,
            ),
        )
        options["client_kwargs"] = client
    elif scheme in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("connect_timeout", policy.connect_timeout_s)
        config.setdefault("read_timeout", policy.timeout_s)
        config.setdefault("retries", {"max_attempts": 2, "mode": "standard"})
        options["config_kwargs"] = config
    return options


def exists_or_raise(ref: str, storage_options: dict[str, Any] | None = None) -> None:
    """Raise :class:`SourceNotFoundError` naming ``ref`` when nothing is there, and a
    :class:`SourceError` that says what went wrong (a certificate, credentials, an
    unreachable host) when the question cannot be answered."""
    if not is_url(ref):
        path = local_path(ref)
        if not os.path.exists(path):
            raise SourceNotFoundError(f"no such file or directory: {path}")
        if not (os.path.isfile(path) or os.path.isdir(path)):  # reading a pipe would block
            raise SourceError(f"{path} is not a regular file (a device, pipe or socket)")
        return
    import fsspec

    from ._http import describe_network_error

    try:
        fs, path = fsspec.core.url_to_fs(ref, **fs_storage_options(ref, storage_options))
        if ref.partition("://")[0].lower() in ("http", "https"):
            found = fs.exists(path, strict=True)  # an error is an error, not "absent"
        else:
            found = fs.exists(path)
    except ImportError as exc:
        raise SourceError(
            f"cannot open {redact_url(ref)}: {exc} (pip install 'minerva-dask[s3]' for s3://)"
        ) from None
    except FileNotFoundError:
        found = False
    except Exception as exc:  # network, TLS, credentials: say which
        raise SourceError(f"cannot open {redact_url(ref)}: {describe_network_error(exc)}") from None
    if not found:
        raise SourceNotFoundError(f"nothing found at {redact_url(ref)}")
