"""Byte ranges of a remote file, many in flight, each retried on its own.

A remote TIFF is read by stateless range requests through the file's own fsspec
filesystem (``cat_ranges``: one client, its settings, all ranges of a chunk in flight
together). Each range is judged alone: a short answer, a dropped connection, a 503 or a
timeout is retried for that range only, with the network policy's backoff
(:mod:`._http`); a missing or forbidden file, a certificate error, or a server that
ignores ``Range`` (it answers the whole file) fails at once with a message that says so.

A file on an HTTP server that ignores ``Range`` (a plain ``python -m http.server``, some
static hosts) is fetched whole, once, and read from memory when it is at most
:data:`WHOLE_FILE_MAX_BYTES` (64 MiB; the storage option ``whole_file_max_bytes`` raises
or lowers it); a larger one fails with that one-line message.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..errors import RemoteError, SourceError, SourceNotFoundError
from ._fs import redact_url
from ._http import RetryPolicy, call_with_retries, describe_network_error, is_transient

__all__ = [
    "WHOLE_FILE_MAX_BYTES",
    "NoRangeSupportError",
    "fetch_whole",
    "ignores_ranges",
    "memory_reader",
    "no_range_support",
    "range_reader",
    "whole_file_max_bytes",
]

# Largest file fetched whole from a server that ignores Range (storage option
# ``whole_file_max_bytes``).
WHOLE_FILE_MAX_BYTES = 64 * 2**20


class NoRangeSupportError(SourceError):
    """The server answered a byte-range request with the whole file."""


def no_range_support(
    ref: str, detail: str = "", size: int | None = None, limit: int = WHOLE_FILE_MAX_BYTES
) -> NoRangeSupportError:
    """The one-line error for a server that ignores ``Range`` (``size``: the file's, when
    it is over ``limit``, the most fetched whole)."""
    over = ""
    if size is not None:
        over = (
            f"; at {size} bytes the file is over the {limit} bytes fetched whole "
            "(storage option whole_file_max_bytes raises that)"
        )
    return NoRangeSupportError(
        f"{redact_url(ref)}: the server does not support HTTP Range requests{detail}, which "
        f"reading a TIFF remotely needs{over}: serve it from a server or object store that "
        "does (S3, nginx, Apache), or download the file first"
    )


def whole_file_max_bytes(storage_options: dict[str, Any] | None) -> int:
    """The ``whole_file_max_bytes`` storage option (an integer >= 0, text allowed, as the
    CLI's ``--storage-option`` gives it), else :data:`WHOLE_FILE_MAX_BYTES`."""
    value = (storage_options or {}).get("whole_file_max_bytes", WHOLE_FILE_MAX_BYTES)
    try:
        number = float(value)
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise ValueError
        if number != int(number):
            raise ValueError
    except (TypeError, ValueError):
        raise SourceError(
            f"storage option whole_file_max_bytes={value!r} is not a number of bytes >= 0"
        ) from None
    return int(number)


def ignores_ranges(fileobj: Any) -> bool:
    """Whether the HTTP server behind an open fsspec ``HTTPFile`` ignores ``Range``.

    Asks for byte 1 alone: fsspec refuses an answer that is not that range before reading
    its body, so a server that would send the whole file costs one response header.
    """
    fetch = getattr(fileobj, "async_fetch_range", None)
    size = getattr(fileobj, "size", None)
    if fetch is None or not size or size < 3:
        return False  # not an HTTP file, or too small to tell (and fetched whole anyway)
    from fsspec.asyn import sync

    try:
        body = sync(fileobj.fs.loop, fetch, 1, 2)
    except ValueError as exc:
        if "range" in str(exc).lower():
            return True
        raise
    return len(body) > 1


def fetch_whole(fileobj: Any, ref: str, limit: int) -> bytes:
    """The whole file behind ``fileobj`` (a server that ignores ``Range``), if at most
    ``limit`` bytes; else the one-line error that says so."""
    size = int(fileobj.size)
    if size > limit:
        raise no_range_support(ref, size=size, limit=limit)
    data = fileobj.fs.cat_file(fileobj.path)
    if len(data) != size:
        raise RemoteError(
            f"{redact_url(ref)}: {len(data)} of {size} bytes came back fetching the whole "
            "file (the server ignores Range)"
        )
    return bytes(data)


def memory_reader(data: bytes) -> Callable[[list[int], list[int]], list[bytes]]:
    """``fetch(offsets, byte_counts)`` over a whole file held in memory."""
    view = memoryview(data)

    def fetch(offsets: list[int], counts: list[int]) -> list[bytes]:
        return [bytes(view[o : o + c]) for o, c in zip(offsets, counts, strict=True)]

    return fetch


def _checked(ref: str, body: Any, count: int) -> bytes:
    """``body`` if it is ``count`` bytes; raises what went wrong otherwise."""
    if isinstance(body, BaseException):
        raise body
    if len(body) > count:
        raise no_range_support(ref, f" (it sent {len(body)} bytes for a range of {count})")
    if len(body) < count:
        raise ValueError(f"{len(body)} of {count} bytes came back (truncated)")
    return bytes(body)


def range_reader(
    fs: Any, path: str, ref: str, policy: RetryPolicy | None = None
) -> Callable[[list[int], list[int]], list[bytes]]:
    """``fetch(offsets, byte_counts) -> [bytes]`` for the file at ``path`` on ``fs``.

    All ranges are asked together; those that fail transiently are asked again one by
    one (never the whole batch) until each succeeds or runs out of retries. ``ref`` (the
    user's URL) names the file in errors, redacted.
    """
    policy = policy or RetryPolicy()

    def one(start: int, count: int) -> bytes:
        what = f"{redact_url(ref)} bytes {start}-{start + count}"
        try:
            body = fs.cat_file(path, start=start, end=start + count)
        except Exception as exc:
            if is_transient(exc):
                raise ValueError(describe_network_error(exc)) from None  # retried
            raise _permanent(ref, exc, what) from None
        return _checked(ref, body, count)

    def fetch(offsets: list[int], counts: list[int]) -> list[bytes]:
        ends = [o + c for o, c in zip(offsets, counts, strict=True)]
        try:
            bodies = fs.cat_ranges([path] * len(offsets), offsets, ends, on_error="return")
        except Exception as exc:  # the batch itself failed: each range on its own
            if not is_transient(exc):
                raise _permanent(ref, exc, f"{redact_url(ref)}") from None
            bodies = [exc] * len(offsets)
        out = []
        for start, count, body in zip(offsets, counts, bodies, strict=True):
            try:
                out.append(_checked(ref, body, count))
                continue
            except NoRangeSupportError:
                raise
            except Exception as exc:
                if not is_transient(exc):
                    what = f"{redact_url(ref)} bytes {start}-{start + count}"
                    raise _permanent(ref, exc, what) from None
            what = f"{redact_url(ref)} bytes {start}-{start + count}"
            out.append(
                call_with_retries(
                    lambda s=start, c=count: one(s, c),
                    what=what,
                    policy=policy,
                    transient=(OSError, TimeoutError),
                )
            )
        return out

    return fetch


def _permanent(ref: str, exc: BaseException, what: str) -> Exception:
    if isinstance(exc, FileNotFoundError):
        return SourceNotFoundError(f"{redact_url(ref)} is gone (reading {what})")
    if isinstance(exc, SourceError):
        return exc
    return RemoteError(f"reading {what} failed: {describe_network_error(exc)}")
