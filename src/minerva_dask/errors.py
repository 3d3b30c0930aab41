"""The error tree of minerva-dask.

Every error the library raises on purpose derives from :class:`MinervaDaskError`, and also
from the builtin exception that fits, so ``except ValueError`` keeps working for callers
who do not know this package. The CLI prints a ``MinervaDaskError`` as one line and exits
with status 2.
"""

from __future__ import annotations

from ._redact import redact

__all__ = [
    "AuthError",
    "BlockMismatchError",
    "MinervaDaskError",
    "MissingDependencyError",
    "OutputError",
    "RemoteError",
    "RequestError",
    "SourceError",
    "SourceNotFoundError",
    "TileReadError",
]


class MinervaDaskError(Exception):
    """Base class of every error raised by minerva-dask on purpose.

    Its message is redacted when the error is made (:func:`minerva_dask._redact.redact`):
    no password, key, token or ``user:pass@`` reaches a message, a log or a traceback.
    """

    def __init__(self, *args: object) -> None:
        super().__init__(*(redact(a) if isinstance(a, str) else a for a in args))


class RequestError(MinervaDaskError, ValueError):
    """A render request is malformed, or does not fit the image it is applied to."""


class SourceError(MinervaDaskError, OSError):
    """An image source cannot be opened or understood."""


class SourceNotFoundError(SourceError, FileNotFoundError):
    """The image named by a path or URL does not exist."""


class TileReadError(SourceError):
    """Reading or decoding one tile failed; the message names image, level and tile."""


class AuthError(MinervaDaskError, PermissionError):
    """Credentials are missing, wrong or expired; the message names where they come from."""


class RemoteError(SourceError):
    """A server answered with an error; ``status`` holds the HTTP status code, if any."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class OutputError(MinervaDaskError, OSError):
    """An output file cannot be written."""


class BlockMismatchError(OutputError):
    """A block of the image computed to another dtype or shape than its array declared;
    the message names the block. Nothing of it is written; a fresh export's unfinished
    output is removed (a resume could only fail the same way)."""


class MissingDependencyError(MinervaDaskError, ImportError):
    """An optional dependency is needed for what was asked; the message names the extra."""
