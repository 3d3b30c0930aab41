"""The network policy for every remote read: OMERO, Minerva's API, HTTP and S3 files.

One place decides, for every request:

* **TLS**: certificates are verified unless the caller chose ``verify=False`` for that
  source, and that choice holds whatever ``REQUESTS_CA_BUNDLE`` or ``CURL_CA_BUNDLE`` say
  (requests lets the environment override a session's ``verify`` otherwise).
* **Where credentials go**: redirects are never followed, and a URL a server advertises
  (OMERO's ``/api/`` index) is used only on the scheme and host the user named
  (:func:`check_same_origin`).
* **Time**: a connect timeout, a read timeout per socket read, and a deadline for the
  whole request, body included, so a server trickling a byte at a time cannot hang us.
* **Retries**: exponential backoff with full jitter, per request (one tile, one byte
  range; never a whole batch), on connection errors, timeouts, truncated bodies, 429 and
  5xx, and bodies a caller's ``validate`` rejects.
* **What is said**: URLs in messages and logs go through :func:`redact`.

fsspec filesystems (HTTP through aiohttp, S3 through s3fs/botocore) get the same timeouts
and retry budget through :func:`fs_storage_options`; their reads are retried per range by
the caller with :func:`call_with_retries`.
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from .._redact import redact as redact_text
from ..errors import MinervaDaskError, RemoteError

__all__ = [
    "RetryPolicy",
    "call_with_retries",
    "check_same_origin",
    "describe_network_error",
    "is_transient",
    "make_session",
    "open_with_retries",
    "redact",
    "request_with_retries",
]

logger = logging.getLogger(__name__)

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_READ_SIZE = 1 << 16


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How hard to try one request.

    ``max_retries`` attempts after the first, backoff from ``initial_delay_s`` doubling up
    to ``max_delay_s`` (full jitter); ``connect_timeout_s`` to open a connection,
    ``timeout_s`` for each socket read, ``deadline_s`` for one attempt, body included, and
    ``total_s`` for the request with all its attempts and waits: a server that never
    answers is given up on after that, not after every attempt's timeouts added up.
    """

    max_retries: int = 5
    initial_delay_s: float = 0.25
    max_delay_s: float = 8.0
    timeout_s: float = 30.0
    connect_timeout_s: float = 10.0
    deadline_s: float = 60.0
    total_s: float = 120.0

    def delay_s(self, attempt: int) -> float:
        """Full-jitter exponential backoff before retry ``attempt`` (1-based)."""
        ceiling = min(self.max_delay_s, self.initial_delay_s * 2 ** (attempt - 1))
        return random.uniform(0, ceiling)

    def attempts(self) -> Iterator[int]:
        """Attempt numbers 0, 1, ... with the backoff slept before each retry, while
        retries and the request's total time last (``time.monotonic`` based)."""
        give_up = time.monotonic() + self.total_s
        for attempt in range(self.max_retries + 1):
            if attempt:
                delay = self.delay_s(attempt)
                if time.monotonic() + delay >= give_up:
                    return
                time.sleep(delay)
            yield attempt


class _Session(requests.Session):
    """A session whose ``verify`` is what its owner set, whatever the environment says."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):  # type: ignore[no-untyped-def]
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.verify is False:  # --insecure for this source: REQUESTS_CA_BUNDLE may not undo it
            settings["verify"] = False
        return settings


def make_session(
    *, pool_size: int = 32, verify: bool = True, headers: Mapping[str, str] | None = None
) -> requests.Session:
    """A pooled session (keep-alive, ``pool_size`` connections per host).

    TLS verification is on unless ``verify=False`` is chosen explicitly for this source;
    redirects are never followed by :func:`request_with_retries`.
    """
    session = _Session()
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

    >>> redact("https://u:p@h/x/?bsession=abc&c=1", {"tile": "0,1,2"})
    'https://h/x/?bsession=***&c=1&tile=0,1,2'
    """
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True) + list((params or {}).items())
    # credential-named values (bsession, password, token, X-Amz-*...) are masked by
    # redact_text below, the one redaction; the user name is kept out of logs too
    clean = [(k, "***" if k == "username" else str(v)) for k, v in pairs]
    query = urlencode(clean, safe=",|:$*")
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return redact_text(urlunsplit((parts.scheme, netloc, parts.path, query, "")))


def check_same_origin(base: str, url: str, what: str) -> str:
    """``url`` if it has the scheme and host of ``base``; else a :class:`RemoteError`.

    Servers advertise URLs (OMERO's ``/api/`` index); behind a TLS-terminating proxy that
    does not pass ``X-Forwarded-Proto`` they advertise ``http://``. Following one would
    send a password or session in clear, or to another host, so it is refused.

    >>> check_same_origin("https://h/omero/", "https://h/omero/api/v0/", "x")
    'https://h/omero/api/v0/'
    """
    want, got = _origin(base), _origin(url)
    if got != want:
        raise RemoteError(
            f"{redact(base)} advertises {what} at {redact(url)}, on another "
            f"{'scheme' if got[1:] == want[1:] else 'host'}; "
            "refusing to send credentials there (a proxy that terminates TLS without "
            "setting X-Forwarded-Proto makes servers advertise http://)"
        )
    return url


def _origin(url: str) -> tuple[str, str, int | None]:
    """``(scheme, host, port)`` of ``url``, the default port made explicit."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


class _DeadlineExceeded(Exception):
    pass


def _read_body(response: requests.Response, deadline: float) -> None:
    """Read the body of a streamed response into ``response.content`` before ``deadline``
    (``time.monotonic()``): each socket read is bounded by the read timeout, the whole by
    the deadline, so a trickling server is cut off."""
    chunks = []
    raw = response.raw
    while True:
        if time.monotonic() > deadline:
            response.close()
            raise _DeadlineExceeded()
        chunk = raw.read1(_READ_SIZE, decode_content=True)
        if not chunk:
            break
        chunks.append(chunk)
    response._content = b"".join(chunks)  # type: ignore[attr-defined]
    response._content_consumed = True  # type: ignore[attr-defined]


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
    body, which counts as transient. A 4xx other than 408/425/429 fails at once; a
    redirect is an error (never followed: it could carry credentials elsewhere).
    """
    last_error, tried = "no attempt made", 0
    give_up = time.monotonic() + policy.total_s
    for attempt in range(policy.max_retries + 1):
        if attempt:
            delay = policy.delay_s(attempt)
            if time.monotonic() + delay >= give_up:
                last_error += f"; no time left of the {policy.total_s:g} s allowed"
                break
            logger.debug("retry %d for %s in %.2f s (%s)", attempt, what, delay, last_error)
            time.sleep(delay)
        started = time.monotonic()
        left = give_up - started
        if left <= 0:  # a sleep overran, or Retry-After used the time up
            last_error += f"; no time left of the {policy.total_s:g} s allowed"
            break
        tried += 1
        try:
            response = session.request(
                method,
                url,
                params=params,
                timeout=(min(policy.connect_timeout_s, left), min(policy.timeout_s, left)),
                allow_redirects=False,
                stream=True,
                **kwargs,
            )
            _read_body(response, started + min(policy.deadline_s, left))
        except requests.exceptions.SSLError as exc:
            raise RemoteError(f"{what}: {describe_network_error(exc, url)}") from None
        except _DeadlineExceeded:
            last_error = f"no complete answer within {policy.deadline_s:g} s"
            continue
        except (requests.RequestException, OSError) as exc:
            last_error = describe_network_error(exc, url)
            continue
        logger.debug(
            "%s %s -> %d in %.3f s",
            method,
            redact(url, params),
            response.status_code,
            time.monotonic() - started,
        )
        if on_response is not None:
            on_response(response)
        if response.status_code in _RETRY_STATUS:
            last_error = f"HTTP {response.status_code}"
            retry_after = response.headers.get("Retry-After", "")
            if retry_after.isdigit() and attempt < policy.max_retries:
                wait = min(float(retry_after), policy.max_delay_s, give_up - time.monotonic())
                time.sleep(max(wait, 0.0))
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
        f"{what}: failed after {tried} attempts; last error: {last_error} ({redact(url)})"
    )


def call_with_retries[T](
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy,
    transient: tuple[type[BaseException], ...],
) -> T:
    """Call ``fn()`` until it succeeds, retrying ``transient`` errors with backoff, within
    the policy's retries and total time.

    For reads that are not plain HTTP requests (byte ranges through fsspec, S3 through
    s3fs). A ``ValueError`` from ``fn`` (a body that does not decode, a short read)
    counts as transient too; our own errors (already judged and worded) never do.
    """
    last_error, tried = "no attempt made", 0
    for attempt in policy.attempts():
        tried = attempt + 1
        try:
            return fn()
        except MinervaDaskError:
            raise  # already judged and worded: not transient
        except (*transient, ValueError) as exc:
            last_error = describe_network_error(exc)
            logger.debug("attempt %d at %s failed: %s", tried, what, last_error)
    raise RemoteError(f"{what}: failed after {tried} attempts; last error: {last_error}")


def open_with_retries[T](ref: str, opener: Callable[[], T], policy: RetryPolicy | None = None) -> T:
    """``opener()`` (reading a remote file's or store's metadata), retried as a whole
    while it fails transiently, within the policy's retries and total time: its reads go
    through libraries that do not retry."""
    policy = policy or RetryPolicy()
    last: BaseException | None = None
    for _ in policy.attempts():
        try:
            return opener()
        except Exception as exc:
            if not is_transient(exc):
                if isinstance(exc, MinervaDaskError):
                    raise
                raise RemoteError(
                    f"opening {redact(ref)} failed: {describe_network_error(exc)}"
                ) from None
            last = exc
            logger.debug("opening %s: %s; retrying", redact(ref), describe_network_error(exc))
    detail = describe_network_error(last) if last is not None else "no attempt made"
    raise RemoteError(f"opening {redact(ref)} failed: {detail}")


def describe_network_error(exc: BaseException, url: str | None = None) -> str:
    """One line for a person: what kind of network failure ``exc`` is, in their terms
    (a certificate problem is a certificate problem, not "nothing found"; missing AWS
    credentials say how to read a public bucket)."""
    text = _first_line(exc)
    chain = [exc, exc.__cause__, exc.__context__]
    names = " ".join(type(e).__name__ for e in chain if e is not None)
    lowered = f"{names} {text}".lower()
    where = f" ({redact(url)})" if url else ""
    status = getattr(exc, "status", None)
    if "nocredentials" in lowered or "unable to locate credentials" in lowered:
        return (
            f"no AWS credentials found{where}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY or AWS_PROFILE; for a public bucket pass "
            "storage_options={'anon': True} (CLI: --storage-option anon=true)"
        )
    # before TLS: aiohttp says "ssl:default" of every connection it could not make
    if "name or service not known" in lowered or "nodename nor servname" in lowered:
        return f"unknown host{where}: {text}"
    if "connection refused" in lowered or "connect call failed" in lowered:
        return f"connection refused{where}: nothing is listening there"
    if _about_tls(lowered):
        return (
            f"TLS certificate verification failed{where}: {text}; if you trust this server, "
            "verify=False (CLI: --insecure) turns verification off for it"
        )
    if "endpointconnection" in lowered or "could not connect to the endpoint" in lowered:
        return f"cannot reach the endpoint{where}: {text}"
    if "timeout" in lowered or "timed out" in lowered:
        return f"timed out{where}: {text}"
    if isinstance(exc, PermissionError) or status in (401, 403) or "accessdenied" in lowered:
        return f"access denied{where}: {text}"
    if isinstance(status, int):
        return f"HTTP {status}{where}: {text}"
    return f"{type(exc).__name__}{where}: {text}"


def is_transient(exc: BaseException) -> bool:
    """Whether trying ``exc``'s request again may help: connection trouble, timeouts,
    short bodies, 408/425/429/5xx; not a missing or forbidden object, a certificate
    error or a bad request."""
    if isinstance(exc, MinervaDaskError | FileNotFoundError | PermissionError):
        return False  # ours are judged and worded already; absent and forbidden stay so
    if isinstance(exc, NotImplementedError):
        return False
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return status in _RETRY_STATUS
    lowered = f"{type(exc).__name__} {exc}".lower()
    if _about_tls(lowered) or "nocredentials" in lowered:
        return False
    if isinstance(exc, OSError | TimeoutError | ValueError):
        return True
    return any(word in lowered for word in ("connection", "payload", "disconnected", "timeout"))


def _about_tls(lowered: str) -> bool:
    """Whether an error's text is about TLS; aiohttp names the TLS setting of every
    connection it could not make (``Cannot connect to host h:80 ssl:default [Connect
    call failed]``): a refused plain connection is not a certificate problem."""
    lowered = re.sub(r"\bssl:\S+", "", lowered)
    return "certificate" in lowered or "ssl" in lowered


def _first_line(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return redact_text(text[:300])


def _body_excerpt(response: requests.Response) -> str:
    kind = response.headers.get("Content-Type", "")
    if "json" in kind or "text" in kind:
        return redact_text(" ".join(response.text.split())[:200]) or "(empty body)"
    return f"({kind or 'no content type'}, {len(response.content)} bytes)"
