"""Where an OME-Zarr export is written, and how it replaces an old one.

A local export is written into a hidden sibling of its target, ``.{name}.partial`` in the
same folder, and swapped in only when complete: exchanged with the old store in one
atomic ``renameat2(RENAME_EXCHANGE)`` where Linux offers it (else the old store is renamed
aside, the new one renamed in), then the old store is deleted. Failed or killed, the
target is as it was; the target only ever holds a complete export.

Before any chunk is written, the store's group attributes say what it is:
``attrs["minerva-dask"] = {"state": "in-progress", "token": ..., ...}``, the token naming
the render (image, request, version and chunk side). An interrupted export stays in its
partial sibling, and ``resume`` continues it there (and swaps it in when done); ``resume``
refuses, untouched, anything else: a foreign store, a complete export, another render's
unfinished one. Without ``resume``, an unfinished export in the way is an error unless
``overwrite`` says to start again. A full disk removes the partial store (it holds the
space), other failures and interruptions keep it for ``resume``.

A remote store (``s3://``...) is written in place: an object store cannot swap a store
atomically, so an existing one is never replaced (delete it first), only resumed when its
attributes say it is an unfinished export of the same render.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import Any

from .._paths import is_url
from ..errors import OutputError
from ._atomic import ZARR_MARKERS, check_replaceable

__all__ = [
    "KEY",
    "StorePlan",
    "discard",
    "exists_error",
    "finish",
    "in_progress",
    "open_destination",
    "plan_store",
    "store_fs",
]

KEY = "minerva-dask"


@dataclass(frozen=True, slots=True)
class StorePlan:
    """``target``: the store asked for, ``target_root`` its fsspec path; ``work``:
    where chunks go (its partial sibling, or the target itself when remote); ``fs`` and
    ``root``: fsspec's view of ``work``; ``resume``: continue the unfinished export at
    ``work``; ``replace``: the target exists and is swapped out at the end."""

    target: str
    target_root: str
    work: str
    fs: Any
    root: str
    resume: bool
    replace: bool


def in_progress(token: str, provenance: dict[str, Any], overwrite: bool) -> dict[str, Any]:
    """The attributes entry of an unfinished export (``overwrite``: it may replace the
    target when done, as it was asked when started)."""
    return {
        "state": "in-progress",
        "token": token,
        "request": provenance.get("request"),
        "image": provenance.get("image"),
        "overwrite": overwrite,
    }


def _entry(fs: Any, root: str) -> tuple[dict[str, Any] | None, str | None]:
    """``(attrs["minerva-dask"], None)`` of the zarr group at ``root``, or ``(None, why
    it is not ours)``."""
    for name, inside in (("zarr.json", "attributes"), (".zattrs", None)):
        try:
            document = json.loads(fs.cat_file(f"{root}/{name}"))
        except FileNotFoundError:
            continue
        except (OSError, ValueError):
            return None, "its zarr metadata cannot be read"
        attrs = document.get(inside, {}) if inside else document
        entry = attrs.get(KEY) if isinstance(attrs, dict) else None
        if not isinstance(entry, dict):
            return None, "it was not written by minerva-dask"
        return entry, None
    return None, "it is not a zarr group"


def _check_resumable(fs: Any, root: str, shown: str, token: str) -> dict[str, Any]:
    """The entry of the unfinished export of this render at ``root``, or refuse."""
    entry, why = _entry(fs, root)
    if entry is not None and entry.get("state") != "in-progress":
        why = "it is a complete export" + (  # a remote store is never replaced
            "; delete it first to write it again"
            if is_url(shown)
            else " (overwrite=True, CLI: --overwrite, replaces it)"
        )
    elif entry is not None and entry.get("token") != token:
        why = "it is an unfinished export of another request or image"
        theirs = str(entry.get("token", ""))
        if _unsharded(theirs) == _unsharded(token):  # the same render, another --shard
            shard = theirs[len(_unsharded(theirs)) + len(":shard") :] or "1"
            why = (
                f"it was started with {shard} chunks per shard side: resume with shard={shard} "
                f"(CLI: --shard {shard})"
            )
    if why:
        raise OutputError(f"cannot resume into {shown}: {why}; it was left untouched")
    return entry  # type: ignore[return-value]


def _unsharded(token: str) -> str:
    """An OME-Zarr export's token without its shard part (``...:side[:shardN]``)."""
    head, sep, tail = token.rpartition(":shard")
    return head if sep and tail.isdigit() else token


def exists_error(url: str) -> OutputError:
    return OutputError(
        f"output {url} exists; pass overwrite=True (CLI: --overwrite) to replace it "
        "or resume=True (CLI: --resume) to continue an interrupted export"
    )


def plan_store(
    url: str, fs: Any, root: str, token: str, *, overwrite: bool, resume: bool
) -> StorePlan:
    """Decide where the export of ``token`` goes, refusing (before anything is written)
    what would destroy a store that is not an unfinished export of ours."""
    exists = fs.exists(root)
    if is_url(url):
        if exists and resume:
            _check_resumable(fs, root, url, token)
            return StorePlan(url, root, url, fs, root, True, False)
        if exists and overwrite:
            raise OutputError(
                f"cannot replace {url}: an object store cannot swap a store atomically; "
                "delete it first"
            )
        if exists:
            raise exists_error(url)
        return StorePlan(url, root, url, fs, root, False, False)
    if os.path.lexists(root) and (os.path.islink(root) or not os.path.isdir(root)):
        raise OutputError(  # a file, a device, a link: never swapped out for a store
            f"output {url} exists and is not a folder (an OME-Zarr store is one); "
            "minerva-dask does not replace it: remove it or choose another name"
        )
    folder, name = os.path.split(os.path.abspath(root))
    name = name.encode()[:200].decode(errors="ignore")  # room for the hidden suffixes
    partial = os.path.join(folder, f".{name}.partial")
    if exists and not (overwrite or resume):
        raise exists_error(url)
    if exists and overwrite:
        check_replaceable(root, "zarr store", ZARR_MARKERS)
    if resume and os.path.lexists(partial):
        entry = _check_resumable(fs, partial, f"{url} (its unfinished export {partial})", token)
        if exists and not (overwrite or entry.get("overwrite")):
            raise exists_error(url)
        return StorePlan(url, root, partial, fs, partial, True, exists)
    if resume and exists:
        _check_resumable(fs, root, url, token)  # a complete or foreign target: refused
        return StorePlan(url, root, url, fs, root, True, False)
    if os.path.lexists(partial):
        entry, _ = _entry(fs, partial)
        if entry is None or entry.get("state") != "in-progress":
            raise OutputError(f"cannot write {url}: {partial} is in the way (not ours)")
        if not overwrite:
            raise OutputError(
                f"an interrupted export of {url} is in {partial}; pass resume=True "
                "(CLI: --resume) to continue it or overwrite=True (CLI: --overwrite) to start "
                "again"
            )
        shutil.rmtree(partial)
    return StorePlan(url, root, partial, fs, partial, False, exists)


def finish(plan: StorePlan) -> None:
    """Put a complete export at its target: swap it with the old store, delete that."""
    if plan.work == plan.target:
        return
    target = plan.target_root
    if not os.path.lexists(target):
        os.rename(plan.work, target)
        return
    if _exchange(plan.work, target):  # the old store is now at plan.work
        _remove(plan.work)
        return
    folder, name = os.path.split(target)
    name = name.encode()[:200].decode(errors="ignore")
    aside = os.path.join(folder, f".{name}.replaced-{os.urandom(4).hex()}")
    os.rename(target, aside)
    try:
        os.rename(plan.work, target)
    except BaseException:
        os.rename(aside, target)
        raise
    _remove(aside)


def _remove(path: str) -> None:
    """Delete a replaced output: a folder's tree, or a file or link itself."""
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def discard(plan: StorePlan) -> None:
    """Remove the partial store of a failed export (a full disk: it holds the space)."""
    if plan.work != plan.target:
        shutil.rmtree(plan.work, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` ``RENAME_EXCHANGE``); ``False``
    where the system cannot."""
    import ctypes
    import sys

    if not sys.platform.startswith("linux"):
        return False
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
        renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
        renameat2.argtypes += [ctypes.c_uint]
        at_fdcwd, exchange = -100, 2
        if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), exchange) == 0:
            return True
    return False


def store_fs(url: str, storage_options: dict[str, Any]) -> tuple[Any, str]:
    """fsspec's filesystem and path for ``url`` (local folders made as needed)."""
    import fsspec

    if not is_url(url):  # local markers need their folders made
        return fsspec.core.url_to_fs(url, auto_mkdir=True, **storage_options)
    return fsspec.core.url_to_fs(url, **storage_options)


READ_ONLY_SCHEMES = ("http", "https", "github", "tar", "libarchive")  # fsspec's, no writes


def open_destination(
    url: str, options: dict[str, Any], *, exists_error: OutputError | None = None
) -> tuple[Any, str]:
    """Check the target's folder or bucket before any work: it exists and is writable.
    ``exists_error``: raised instead of "not writable" where a local target exists (it
    is refused anyway, and the user's fix is that one)."""
    scheme = url.split("://", 1)[0].lower() if is_url(url) else ""
    if scheme in READ_ONLY_SCHEMES:
        raise OutputError(
            f"cannot write {url}: {scheme}:// is read-only; write to a local path, s3:// or "
            "another writable fsspec store"
        )
    try:
        fs, root = store_fs(url, options)
    except (OSError, ValueError) as exc:
        raise OutputError(f"cannot write {url}: {exc}") from None
    if not is_url(url):
        parent = os.path.dirname(os.path.abspath(root))
        if not os.path.isdir(parent):
            raise OutputError(f"cannot write {url}: folder {parent} does not exist")
        if not os.access(parent, os.W_OK):
            if exists_error is not None and os.path.lexists(root):
                raise exists_error  # refused anyway: say so first
            raise OutputError(f"cannot write {url}: folder {parent} is not writable")
    else:
        bucket = root.split("/", 1)[0]
        try:
            if not fs.exists(bucket):  # s3fs's exists() is False on any error: ask which
                fs.invalidate_cache(bucket)
                fs.ls(bucket)
        except Exception as exc:  # refused credentials, none, an endpoint not answering
            raise OutputError(f"cannot write {url}: {_bucket_problem(bucket, exc)}") from None
    return fs, root


def _bucket_problem(bucket: str, exc: Exception) -> str:
    """What stops writing into ``bucket``, in a user's terms (never chained: a remote
    library's text may quote a URL)."""
    text = (str(exc).splitlines() or [""])[0]
    if isinstance(exc, FileNotFoundError):
        return f"bucket {bucket!r} does not exist"
    if type(exc).__name__ == "NoCredentialsError":
        return (
            "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "or AWS_PROFILE"
        )
    if isinstance(exc, PermissionError):
        return f"access to bucket {bucket!r} denied: {text}"
    return f"{type(exc).__name__}: {text}"
