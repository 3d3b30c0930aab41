"""A zarr store wrapper that applies the network policy to every chunk read.

zarr reads a remote store through fsspec, which does not retry: one 503 or one dropped
connection on one chunk would end a whole-slide render. :class:`RetryingStore` retries
each ``get`` on its own (never the whole batch) with the policy's backoff, on the errors
:func:`._http.is_transient` calls transient, and refuses an answer to a byte-range
request that is longer than the range (a server ignoring ``Range``: zarr would read the
whole shard as if it were the range and fail on a checksum, hiding the cause).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from zarr.abc.store import RangeByteRequest
from zarr.storage import FsspecStore, WrapperStore

from ._fs import fs_storage_options, redact_url
from ._http import RetryPolicy, describe_network_error, is_transient
from ._ranges import NoRangeSupportError

__all__ = ["RetryingStore", "open_remote_store"]

logger = logging.getLogger(__name__)


class RetryingStore(WrapperStore[Any]):
    """``store`` with each chunk read retried under ``policy``; ``ref`` names it."""

    def __init__(self, store: Any, ref: str, policy: RetryPolicy | None = None) -> None:
        super().__init__(store)
        self._ref = ref
        self._policy = policy or RetryPolicy()

    async def get(self, key: str, prototype: Any, byte_range: Any = None) -> Any:
        give_up = time.monotonic() + self._policy.total_s
        for attempt in range(self._policy.max_retries + 1):
            if attempt:
                delay = self._policy.delay_s(attempt)
                await asyncio.sleep(delay)
            try:
                value = await self._store.get(key, prototype, byte_range)
            except Exception as exc:
                out_of_time = time.monotonic() + self._policy.delay_s(attempt + 1) >= give_up
                if not is_transient(exc) or attempt == self._policy.max_retries or out_of_time:
                    raise
                logger.debug(
                    "chunk %s of %s: %s; retrying",
                    key,
                    redact_url(self._ref),
                    describe_network_error(exc),
                )
                continue
            if isinstance(byte_range, RangeByteRequest) and value is not None:
                asked = byte_range.end - byte_range.start
                if len(value) > asked:
                    raise NoRangeSupportError(
                        f"{redact_url(self._ref)}: the server does not support HTTP Range "
                        f"requests (it sent {len(value)} bytes of {key} for a range of "
                        f"{asked}); serve the store from a server or object store that does"
                    )
            return value
        raise AssertionError("unreachable")


def open_remote_store(ref: str, storage_options: dict[str, Any] | None) -> RetryingStore:
    """A read-only fsspec store for the remote zarr at ``ref``, with retries."""
    store = FsspecStore.from_url(
        ref, storage_options=fs_storage_options(ref, storage_options), read_only=True
    )
    return RetryingStore(store, ref)
