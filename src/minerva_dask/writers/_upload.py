"""A file output on an object store (``s3://``): written locally, then uploaded whole.

A TIFF is written by seeking back (IFD offsets, SubIFD tables), which an object store
cannot do in place, so the file writer writes it into a temporary folder on this machine
(``TMPDIR``; it needs the file's size free) and the finished file is uploaded to its key
in one multipart upload. S3 makes an object visible only when its upload completes: the
key holds the old object, or nothing, until the new one is whole, and a failed or killed
upload leaves no object (an aborted multipart upload's parts are discarded; after
``kill -9`` they wait for the bucket's lifecycle rule). An existing object is replaced
only with ``overwrite``. Only ``s3://`` is offered: other remote file systems do not all
promise that an upload appears whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from .._paths import is_url
from ..errors import OutputError
from ._atomic import check_not_input
from ._meta import ExportResult
from ._store import open_destination

__all__ = ["UPLOAD_SCHEMES", "to_file", "to_remote_file"]

logger = logging.getLogger("minerva_dask.writers")

UPLOAD_SCHEMES = ("s3", "s3a")


def to_remote_file(
    write: Callable[[str], ExportResult],
    url: str,
    *,
    inputs: tuple[str, ...] = (),
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """Run ``write(local_path)`` into a temporary folder, then upload the file to ``url``.

    Refuses, before anything is written, a scheme other than ``s3://``, an output that is
    an input, a missing bucket, and an existing object without ``overwrite``."""
    url = os.fspath(url)
    if not is_url(url) or url.split("://", 1)[0].lower() not in UPLOAD_SCHEMES:
        raise OutputError(
            f"cannot write {url}: an OME-TIFF goes to a local path or to s3:// (written "
            "here, then uploaded); write it locally and copy it there"
        )
    check_not_input(url, inputs)
    fs, key = open_destination(url, dict(storage_options or {}))
    try:
        exists = fs.exists(key)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {url}: {type(exc).__name__}: {exc}") from None
    if exists and not overwrite:
        raise OutputError(
            f"output {url} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    folder = tempfile.mkdtemp(prefix=".minerva-dask-upload-")
    try:
        local = os.path.join(folder, os.path.basename(key.rstrip("/"))[:200] or "out.ome.tif")
        result = write(local)
        logger.info("Uploading %s (%.1f MB)", url, os.path.getsize(local) / 1e6)
        before = _uploads_of(fs, key)
        try:
            fs.put_file(local, key)  # multipart above s3fs's block size; visible when whole
        except Exception as exc:  # OSError, or botocore's own (the endpoint went away)
            text = (str(exc).splitlines() or [""])[0]
            raise OutputError(
                f"cannot upload {url}: {type(exc).__name__}: {text} (the old object, if any, "
                "is unchanged)"
            ) from None
        except BaseException:  # stopped (SIGTERM, Ctrl-C): s3fs aborts only on Exception
            _abort_new_uploads(fs, key, before)
            raise
        return replace(result, path=url)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _uploads_of(fs: Any, key: str) -> set[str] | None:
    """The ids of the multipart uploads in progress to ``key`` (None: not known)."""
    try:
        bucket, path, _ = fs.split_path(key)
        answer = fs.call_s3("list_multipart_uploads", Bucket=bucket, Prefix=path)
        return {u["UploadId"] for u in answer.get("Uploads", []) if u.get("Key") == path}
    except Exception:  # no permission to list them, or not S3: nothing will be aborted
        return None


def _abort_new_uploads(fs: Any, key: str, before: set[str] | None) -> None:
    """Abort the multipart uploads to ``key`` begun since ``before`` (ours), so a stopped
    upload leaves no parts in the bucket; best effort."""
    now = _uploads_of(fs, key) if before is not None else None
    for upload in sorted((now or set()) - (before or set())):
        with contextlib.suppress(Exception):
            bucket, path, _ = fs.split_path(key)
            fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=path, UploadId=upload)


def to_file(
    write: Callable[[str], ExportResult],
    output: str | os.PathLike[str],
    *,
    inputs: tuple[str, ...] = (),
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ExportResult:
    """``write(output)`` for a local path; for a URL, :func:`to_remote_file` (written
    here, then uploaded whole)."""
    if is_url(os.fspath(output)):
        return to_remote_file(
            write,
            os.fspath(output),
            inputs=inputs,
            storage_options=storage_options,
            overwrite=overwrite,
        )
    return write(os.fspath(output))
