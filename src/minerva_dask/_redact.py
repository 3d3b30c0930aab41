"""One redaction function for everything that leaves the process as text.

Error messages, log records (ours and third-party libraries'), progress lines and output
metadata all pass through :func:`redact` before anyone can read them. It removes

* every secret this process was given (passwords, session keys, cookies, tokens, AWS
  keys), registered with :func:`register_secret` by the code that reads them;
* user info in URLs (``https://user:pass@host`` -> ``https://***@host``);
* values of query parameters, headers and JSON fields whose names carry credentials
  (``bsession=``, ``X-Amz-Signature=``, ``Authorization:``, ``"IdToken": "..."``...);
* anything shaped like a JWT or an AWS access key id.

Standard library only, and nothing of ours: every layer may import it.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
from collections.abc import Callable
from typing import Any

__all__ = [
    "RedactingFilter",
    "redact",
    "redact_url",
    "redacting_record_factory",
    "register_secret",
    "register_url_secrets",
]

MASK = "***"
_MIN_SECRET_LENGTH = 4  # shorter values would mask ordinary words and numbers

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()  # longest first, so a secret inside another goes too

# Names of query parameters, form fields, headers and JSON keys whose values are secrets:
# any name holding one of these words (X-Amz-Signature, X-Goog-Credential, Key-Pair-Id,
# bsession, access_token, "SecretAccessKey", auth, sig...).
_SECRET_WORDS = (
    r"signature|(?<![a-z])sig(?![a-z])|token|key(?!frame)|auth|cred|secret|"
    r"pass(?!through)|pwd|session|policy|cookie|csrf|SRP_[AB]|SALT|SECRET_BLOCK"
)
_SECRET_NAMES = rf"[\w.-]*(?:{_SECRET_WORDS})[\w.-]*"


@functools.cache
def _patterns() -> tuple[tuple[re.Pattern[str], str], ...]:
    """The credential-shaped patterns, compiled on first use (not at import: every
    crop imports this module, few need it)."""
    return (
        # scheme://user:password@host or scheme://token@host
        (re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"<>]+@"), r"\g<head>***@"),
        # name=value in queries, forms and config lines
        (
            re.compile(rf"(?P<head>(?<![\w.-])(?:{_SECRET_NAMES})=)[^&\s'\",;)>\]]+", re.I),
            rf"\g<head>{MASK}",
        ),
        # "name": "value" and 'name': 'value' (JSON, Python reprs of dicts)
        (
            re.compile(
                rf"(?P<head>['\"](?:{_SECRET_NAMES})['\"]\s*:\s*)(?:b?'[^']*'|\"[^\"]*\")", re.I
            ),
            rf'\g<head>"{MASK}"',
        ),
        # HTTP headers, as urllib3, botocore and http.client print them
        (
            re.compile(
                r"(?P<head>\b(?:Authorization|Proxy-Authorization|Cookie|Set-Cookie|X-CSRFToken|"
                r"X-Amz-Security-Token|X-Amz-Content-Sha256)['\"]?\s*[:=]\s*['\"]?)"
                r"[^'\"\r\n,}]+",
                re.I,
            ),
            rf"\g<head>{MASK}",
        ),
        # JSON Web Tokens (Cognito Id/Access tokens) wherever they appear
        (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), MASK),
        # AWS access key ids
        (re.compile(r"\b(?:AKIA|ASIA|AROA|AIDA)[0-9A-Z]{16}\b"), MASK),
    )


def register_secret(value: object) -> None:
    """Remember ``value`` (a password, key or token) so that :func:`redact` masks it
    wherever it appears later. ``None``, empty and very short values are ignored."""
    global _secrets
    if not isinstance(value, str) or len(value) < _MIN_SECRET_LENGTH:
        return
    with _lock:
        if value in _secrets:
            return
        _secrets = tuple(sorted({*_secrets, value}, key=len, reverse=True))


def register_url_secrets(url: object) -> None:
    """Register the password (and a token given as the user name) of ``url``'s user info.

    >>> register_url_secrets("https://alice:s3cr3t-pw@omero.example.org/")
    >>> redact("login s3cr3t-pw failed")
    'login *** failed'
    """
    from urllib.parse import unquote, urlsplit

    try:
        parts = urlsplit(str(url))
    except ValueError:
        return
    if "@" not in parts.netloc:
        return
    user, _, password = parts.netloc.rsplit("@", 1)[0].partition(":")
    for value in (password, unquote(password)) if password else (user, unquote(user)):
        register_secret(value)


def redact(text: object) -> str:
    """``text`` with every known secret and credential-shaped part replaced by ``***``.

    >>> redact("GET https://bob:hunter22@h/x/?c=1&bsession=abc123 -> 200")
    'GET https://***@h/x/?c=1&bsession=*** -> 200'
    >>> redact('{"IdToken": "eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl", "ok": 1}')
    '{"IdToken": "***", "ok": 1}'
    """
    out = str(text)
    for secret in _secrets:
        if secret in out:
            out = out.replace(secret, MASK)
    for pattern, replacement in _patterns():
        out = pattern.sub(replacement, out)
    return out


def redact_url(url: str) -> str:
    """``url`` without user info or query string: a location safe for messages.

    >>> redact_url("https://user:secret@host/a.tif?X-Amz-Signature=abc")
    'https://host/a.tif'
    """
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(str(url))
    except ValueError:
        return redact(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))


def _redact_record(record: logging.LogRecord) -> None:
    """Render ``record``'s message, exception and stack text, redacted, in place."""
    try:
        message = record.getMessage()
    except Exception:  # a library's broken format string: show it raw, redacted
        message = f"{record.msg!r} {record.args!r}"
    record.msg, record.args = redact(message), None
    if record.exc_info and not record.exc_text:
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def redacting_record_factory(
    base: Callable[..., logging.LogRecord],
) -> Callable[..., logging.LogRecord]:
    """A log record factory (``logging.setLogRecordFactory``) that redacts every record
    of every logger of this process when it is made, whatever handler prints it."""

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _redact_record(record)
        return record

    return factory


class RedactingFilter(logging.Filter):
    """A logging filter that renders each record's message and redacts it (and its
    exception text), so no handler it guards can print a secret. Attach it to handlers:
    a filter on a handler sees the records of every logger, third-party ones included."""

    def filter(self, record: logging.LogRecord) -> bool:
        _redact_record(record)
        return True
