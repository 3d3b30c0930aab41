"""Byte ranges of a remote file, many in flight, each retried on its own.

A remote TIFF is read by stateless range requests through the file's own fsspec
filesystem (``cat_ranges``: one client, its settings, all ranges of a chunk in flight
together). Each range is judged alone: a short answer, a dropped connection, a 503 or a
timeout is retried for that range only, with the network policy's backoff
(:mod:`._http`); a missing or forbidden file, a certificate error, or a server that
ignores ``Range`` (it answers the whole file) fails at once with a message that says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import RemoteError, SourceError, SourceNotFoundError
from ._fs import redact_url
from ._http import RetryPolicy, call_with_retries, describe_network_error, is_transient

__all__ = ["NoRangeSupportError", "range_reader"]


class NoRangeSupportError(SourceError):
    """The server answered a byte-range request with the whole file."""


def _checked(ref: str, body: Any, count: int) -> bytes:
    """``body`` if it is ``count`` bytes; raises what went wrong otherwise."""
    if isinstance(body, BaseException):
        raise body
    if len(body) > count:
        raise NoRangeSupportError(
            f"{redact_url(ref)}: the server does not support HTTP Range requests (it sent "
            f"{len(body)} bytes for a range of {count}); reading a TIFF remotely needs them: "
            "serve it from a server or object store that does (S3, nginx, Apache), or "
            "download the file first"
        )
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
