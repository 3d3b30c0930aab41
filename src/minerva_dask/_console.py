"""What the command line prints: log set-up, one-line warnings and errors, redacted.

Every log record of every logger is redacted when it is made (secrets registered by the
code that read them, user info in URLs, credential-shaped values), credentials in the
environment are registered first, and libraries whose debug output is a wire dump are
held at INFO.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from typing import Any

from ._redact import redact, redacting_record_factory, register_secret

__all__ = ["configure_logging", "first_line", "one_line", "print_error"]

# Their DEBUG output is a wire dump (request and response bodies, signed headers): even
# redacted it is no help to a user, so -vv shows them at INFO at most.
_WIRE_LOGGERS = ("botocore", "boto3", "aiobotocore", "s3transfer", "s3fs")
# A cluster's own chatter ("Lost all workers", worker tracebacks of a task whose error we
# report in one line, asyncio's "Task exception was never retrieved" on a stop): errors
# only by default, their INFO with -v, everything with -vv.
_CLUSTER_LOGGERS = ("distributed", "asyncio", "tornado")
# Our lines about the cluster (its dashboard): shown with -v only.
CLUSTER_LOGGER = "minerva_dask.cluster"
# Environment variables that hold credentials, masked wherever they could appear.
_SECRET_PREFIXES = ("OMERO_", "OME_", "MINERVA_", "AWS_")
_SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN", "SESSION", "COOKIE", "KEY")


def configure_logging(quiet: bool, verbose: int) -> Callable[[], None]:
    """Our INFO lines (the chosen scale, resumed chunks) on stderr unless quiet; other
    libraries' logs with -v (-vv: debug). Every record of every logger is redacted when
    it is made (secrets, user:pass@, tokens), and credentials in the environment are
    registered as secrets first. Returns a function that undoes all of it."""
    for name, value in os.environ.items():
        upper = name.upper()
        if upper.startswith(_SECRET_PREFIXES) and any(w in upper for w in _SECRET_WORDS):
            register_secret(value)
    others = logging.DEBUG if verbose >= 2 else (logging.INFO if verbose else logging.WARNING)
    previous_factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(redacting_record_factory(previous_factory))
    root = logging.getLogger()
    root_handler = logging.StreamHandler(sys.stderr)
    root_handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    root_level = root.level
    root.addHandler(root_handler)
    root.setLevel(others)
    wire_levels = {
        name: logging.getLogger(name).level for name in (*_WIRE_LOGGERS, *_CLUSTER_LOGGERS)
    }
    for name in _WIRE_LOGGERS:
        logging.getLogger(name).setLevel(max(others, logging.INFO))
    cluster = logging.CRITICAL if not verbose else (logging.INFO if verbose == 1 else logging.DEBUG)
    for name in _CLUSTER_LOGGERS:
        logging.getLogger(name).setLevel(cluster)
    # their child loggers carry levels of their own (distributed's config): filter too
    root_handler.addFilter(lambda record: _cluster_record_shown(record, cluster))
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OurFormatter("%(message)s"))
    ours = logging.getLogger("minerva_dask")
    ours.addHandler(handler)
    ours.setLevel(logging.WARNING if quiet else min(logging.INFO, others))
    ours.propagate = False
    # where the cluster is (its dashboard's address): with -v only
    cluster_info = logging.getLogger(CLUSTER_LOGGER)
    cluster_info.setLevel(logging.INFO if verbose and not quiet else logging.WARNING)
    previous_showwarning = warnings.showwarning
    warnings.showwarning = _show_warning

    def restore() -> None:
        warnings.showwarning = previous_showwarning
        ours.removeHandler(handler)
        ours.propagate = True
        ours.setLevel(logging.NOTSET)
        cluster_info.setLevel(logging.NOTSET)
        root.removeHandler(root_handler)
        root.setLevel(root_level)
        for name, level in wire_levels.items():
            logging.getLogger(name).setLevel(level)
        logging.setLogRecordFactory(previous_factory)

    return restore


def _cluster_record_shown(record: logging.LogRecord, threshold: int) -> bool:
    """Whether a record passes: a cluster logger's below ``threshold`` does not."""
    top = record.name.split(".", 1)[0]
    return top not in _CLUSTER_LOGGERS or record.levelno >= threshold


class _OurFormatter(logging.Formatter):
    """Our INFO lines as they are; warnings and errors say what they are."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        text = "".join(c if c.isprintable() or c == "\n" else ascii(c)[1:-1] for c in text)
        if record.levelno >= logging.WARNING:
            kind = "warning" if record.levelno == logging.WARNING else "error"
            return f"minerva-dask: {kind}: {text}"
        return text


def _show_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> None:
    """A warning as one line, ``minerva-dask: warning: ...``, redacted (not Python's
    ``file:line: UserWarning:`` and the source line)."""
    print(f"minerva-dask: warning: {one_line(str(message))}", file=sys.stderr)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "(no message)"


def one_line(text: str) -> str:
    """``text`` redacted, on one line, with control characters (a terminal's escape
    sequences in a file name, say) shown escaped rather than sent to the terminal."""
    line = " ".join(redact(text).split())
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


def print_error(message: str) -> None:
    """Print one redacted line: the message's first line, never a traceback."""
    line = one_line(message)
    print(f"minerva-dask: error: {line}", file=sys.stderr)
