"""HTTP for remote sources: one session factory, one retry loop, credential redaction.

Retries live here and nowhere else: exponential backoff with full jitter on connection
errors, timeouts, truncated bodies, 429 and 5xx, and on bodies a caller's ``validate``
rejects (a truncated JPEG decodes without complaint, so callers check it). ``max_retries``
and ``initial_delay_s`` let tests run without waiting.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from ..errors import RemoteError

__all__ = ["RetryPolicy", "call_with_retries", "make_session", "redact", "request_with_retries"]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_SECRET_PARAMS = (
    "bsession",
    "password",
    "username",
    "token",
    "X-Amz-Signature",
    "X-Amz-Credential",
    "X-Amz-Security-Token",
)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try: attempts after the first, first delay, cap, per-request timeout."""

    max_retries: int = 5
    initial_delay_s: float = 0.25
    max_delay_s: float = 8.0
    timeout_s: float = 60.0

    def delay_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry ``attempt`` (1-based)."""
        ceiling = min(self.max_delay_s, self.initial_delay_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)


def make_session(
    *, pool_size: int = 32, verify: bool = True, headers: Mapping[str, str] | None = None
) -> requests.Session:
    """A pooled ``requests.Session`` (keep-alive, ``pool_size`` connections per host).

    TLS verification is on unless ``verify=False`` is chosen explicitly for this source.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.verify = verify
    session.headers["User-Agent"] = "minerva-dask"
    if headers:
        session.headers.update(headers)
    return session


def redact(url: str, params: Mapping[str, Any] | None = None) -> str:
    """The URL with its query, secrets replaced by ``***``; safe for messages and logs.

    >>> redact("https://h/x/?bsession=abc&c=1", {"tile": "0,1,2"})
    'https://h/x/?bsession=***&c=1&tile=0,1,2'
    """
    from urllib.parse import parse_qsl, urlsplit, urlunsplit

    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True) + list((params or {}).items())
    clean = [(k, "***" if k in _SECRET_PARAMS else str(v)) for k, v in pairs]
    query = urlencode(clean, safe=",|:$*")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


class _Retryable(Exception):
    """An attempt that failed in a way worth trying again."""


def request_with_retries[T](
    session: requests.Session,
    method: str,
    url: str,
    *,
    what: str,
    policy: RetryPolicy,
    params: Mapping[str, Any] | None = None,
    validate: Callable[[requests.Response], T] | None = None,
    on_response: Callable[[requests.Response], None] | None = None,
    **kwargs: Any,
) -> T | requests.Response:
    """Send a request, retrying transient failures; return ``validate(response)`` or the
    response.

    ``what`` names the thing fetched (``"image 5, level 2, tile x=3 y=1"``) for errors.
    ``on_response`` may raise (e.g. an auth error) before the status is judged.
    ``validate`` turns a 2xx response into the result and raises ``ValueError`` for a bad
    body, which counts as transient. A 4xx other than 408/429 fails at once.
    """
    last_error = "no attempt made"
    for attempt in range(policy.max_retries + 1):
        if attempt:
            delay = policy.delay_s(attempt)
            logger.debug("retry %d for %s in %.2f s (%s)", attempt, what, delay, last_error)
            time.sleep(delay)
        started = time.perf_counter()
        try:
            response = session.request(
                method,
                url,
                params=params,
                timeout=policy.timeout_s,
                allow_redirects=False,
                **kwargs,
            )
            _ = response.content  # read the body now: a cut connection raises here
        except (
            requests.ConnectionError,
            requests.Timeout,
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            last_error = f"{type(exc).__name__}: {_first_line(exc)}"
            continue
        logger.debug(
            "%s %s -> %d in %.3f s",
            method,
            redact(url, params),
            response.status_code,
            time.perf_counter() - started,
        )
        if on_response is not None:
            on_response(response)
        if response.status_code in _RETRY_STATUS:
            last_error = f"HTTP {response.status_code}"
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit() and attempt < policy.max_retries:
                time.sleep(min(float(retry_after), policy.max_delay_s))
            continue
        if not 200 <= response.status_code < 300:
            raise RemoteError(
                f"{what}: HTTP {response.status_code} from {redact(url)}: "
                f"{_body_excerpt(response)}",
                status=response.status_code,
            )
        if validate is None:
            return response
        try:
            return validate(response)
        except ValueError as exc:
            last_error = f"bad response body: {exc}"
            continue
    raise RemoteError(
        f"{what}: failed after {policy.max_retries + 1} attempts; last error: "
        f"{last_error} ({redact(url)})"
    )


def call_with_retries[T](
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    transient: tuple[type[BaseException], ...],
) -> T:
    """Call ``fn()`` until it succeeds, retrying ``transient`` errors with backoff.

    For reads that are not plain HTTP requests (S3 through s3fs). A ``ValueError`` from
    ``fn`` (a body that does not decode) counts as transient too.
    """
    last_error = "no attempt made"
    for attempt in range(policy.max_retries + 1):
        if attempt:
            time.sleep(policy.delay_s(attempt))
        try:
            return fn()
        except (*transient, ValueError) as exc:
            last_error = f"{type(exc).__name__}: {_first_line(exc)}"
            logger.debug("attempt %d at %s failed: %s", attempt + 1, what, last_error)
    raise RemoteError(
        f"{what}: failed after {policy.max_retries + 1} attempts; last error: {last_error}"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:200]


def _body_excerpt(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "")
    if "json" in kind or "text" in kind:
        return " ".join(response.text.split())[:200] or "(empty body)"
    return f"({kind or 'no content type'}, {len(response.content)} bytes)"
