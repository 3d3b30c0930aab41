"""Atomic file output: write to a temporary file beside the target, then rename.

One export at a time per output: :func:`output_lock` holds an exclusive ``flock`` on
``.NAME.lock`` beside a local target for the whole export (its partial folder or
temporary file, and the final rename), so a second export, or resume, of the same output
is refused at once, before it touches anything, instead of mixing two renders.

The temporary file is made with ``os.open(O_CREAT | O_EXCL)`` under a random name rather
than ``tempfile.mkstemp``: the same guarantee (a new file of ours, never one that
existed), and the usual mode for a new file (0666 less the umask, where mkstemp gives
0600, which the renamed output would keep).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from .._paths import is_url, local_path
from ..errors import OutputError

__all__ = [
    "FolderWatch",
    "atomic_write",
    "check_not_input",
    "check_output_path",
    "create_temp_beside",
    "disk_full",
    "disk_full_error",
    "output_lock",
]

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


# fsspec's other names for one store: s3a://b/k is the object s3://b/k
_SAME_SCHEME = {"s3a": "s3", "s3n": "s3", "gcs": "gs"}


def _location(ref: str | os.PathLike[str]) -> tuple[str, str]:
    """``("url", normalised URL)`` or ``("path", real path)``: URLs with the scheme (one
    name for each store) and host lower-case, no ``user:pass@``, query, fragment, empty
    path segment or trailing slash; paths (and ``file://``) with symlinks resolved."""
    text = os.fspath(ref)
    if is_url(text):
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        host = parts.netloc.rsplit("@", 1)[-1].lower()
        scheme = _SAME_SCHEME.get(parts.scheme.lower(), parts.scheme.lower())
        path = "/".join(p for p in parts.path.split("/") if p)  # s3://b//k is b/k to some
        return "url", f"{scheme}://{host}/{path}".rstrip("/")
    return "path", os.path.normcase(os.path.realpath(local_path(text)))


def _inside(inner: str, outer: str, sep: str) -> bool:
    return inner.startswith(outer if outer.endswith(sep) else outer + sep)


def check_not_input(output: str | os.PathLike[str], inputs: Iterable[str]) -> None:
    """Raise :class:`OutputError` if ``output`` is, contains or lies inside any of
    ``inputs`` (paths or URLs): writing there would destroy what is being read.

    >>> check_not_input("s3://b/out.ome.zarr", ["s3://B/in.ome.zarr"])
    >>> try:
    ...     check_not_input("S3://user:pw@b/in.zarr/", ["s3://b/in.zarr?x=1"])
    ... except OutputError as exc:
    ...     print(exc)
    output s3://b/in.zarr is the input s3://b/in.zarr; choose another output
    """
    kind, out = _location(output)
    shown = out if kind == "url" else os.fspath(output)  # URLs shown without credentials
    for ref in inputs:
        other_kind, other = _location(ref)
        if other_kind != kind:
            continue
        sep = "/" if kind == "url" else os.sep
        name = other if kind == "url" else ref
        if out == other:
            how = "is"
        elif _inside(out, other, sep):
            how = "lies inside"
        elif _inside(other, out, sep):
            how = "contains"
        else:
            continue
        raise OutputError(f"output {shown} {how} the input {name}; choose another output")


ZARR_MARKERS = ("zarr.json", ".zgroup", ".zattrs", ".zarray")


def check_replaceable(folder: str | os.PathLike[str], what: str, markers: Iterable[str]) -> None:
    """Refuse, even with ``overwrite``, to replace a local ``folder`` that is not empty and
    holds none of ``markers`` (the files every ``what`` has): ``--overwrite`` replaces an
    output, never a folder of someone's files that happens to bear the output's name."""
    try:
        names = set(os.listdir(folder))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputError(f"cannot replace {folder}: {exc.strerror or exc}") from None
    if names and not names & set(markers):
        raise OutputError(
            f"output {folder} is a folder that holds no {what} (none of "
            f"{', '.join(sorted(markers))}); --overwrite replaces only an earlier output: "
            "remove the folder yourself or choose another name"
        )


def disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc``, or an exception it was raised from, says the disk is full."""
    seen = 0
    while exc is not None and seen < 16:
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def disk_full_error(target: str | os.PathLike[str]) -> OutputError:
    """The one line for a full disk while writing ``target``."""
    return OutputError(f"cannot write {os.fspath(target)}: no space left on device")


def check_output_path(
    path: str | os.PathLike[str], *, overwrite: bool = True, inputs: Iterable[str] = ()
) -> Path:
    """Fail early, naming the problem, if ``path`` cannot be written or is an input."""
    check_not_input(path, inputs)
    if is_url(path):  # Path() would make s3://b/x.png the local s3:/b/x.png
        raise OutputError(
            f"cannot write {os.fspath(path)}: this output goes to a local path; write it "
            "here and copy it there (only OME-TIFF and OME-Zarr go to s3:// directly)"
        )
    target = Path(local_path(path))
    if target.is_symlink():  # write the file it names, and keep the link: one's own
        target = _through_link(target)
    if target.is_dir():
        raise OutputError(f"output {target} is a directory; give a file name")
    if target.exists() and not target.is_file():  # a device, a pipe, a socket
        raise OutputError(
            f"output {target} is not a regular file (a device, pipe or socket); "
            "minerva-dask writes a new file and renames it into place, which would replace it"
        )
    if target.exists() and not overwrite:
        raise OutputError(
            f"output {target} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {target}: folder {folder} is not writable")
    return target


def _through_link(link: Path) -> Path:
    """The file the symbolic link ``link`` names, to be written in its place, where the
    link is the user's own (or root's). A link someone else planted in a shared folder
    is refused: following it would let them choose which file is replaced or created
    (the kernel's protected_symlinks guard never sees a path resolved here)."""
    hop = link
    for _ in range(40):  # every link of a chain: one's own link may name a planted one
        if hasattr(os, "getuid") and hop.lstat().st_uid not in (os.getuid(), 0):
            raise OutputError(
                f"output {link} is, or leads through, a symbolic link owned by another user "
                f"({hop}); minerva-dask does not write through it: remove it or choose "
                "another name"
            )
        hop = hop.parent / os.readlink(hop)
        if not hop.is_symlink():
            break
    return Path(os.path.realpath(link))


def _short(name: str, limit: int = 200) -> str:
    """``name`` cut to ``limit`` bytes, so a hidden temporary name beside a long file name
    still fits in the 255 bytes a file name may have."""
    return name.encode()[:limit].decode(errors="ignore")


def create_temp_beside(target: Path) -> tuple[int, Path]:
    """A new, empty file ``.{name}.{random}.part`` in ``target``'s folder, opened for
    writing: its descriptor and path."""
    while True:
        tmp = target.with_name(f".{_short(target.name)}.{os.urandom(6).hex()}.part")
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # 48 random bits: practically never
            continue
        except OSError as exc:  # a folder that takes no new file (/proc, /sys)
            if exc.errno == errno.ENOSPC:
                raise
            raise OutputError(
                f"cannot write {target}: cannot create a file in {target.parent} ({exc.strerror})"
            ) from None


@contextlib.contextmanager
def atomic_write(
    path: str | os.PathLike[str], *, inputs: Iterable[str] = (), overwrite: bool = True
) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success rename it to ``path``; all of it
    under :func:`output_lock`.

    ``path`` may not be one of ``inputs``, nor exist unless ``overwrite`` (checked again
    once locked). On any error (a full disk becomes :func:`disk_full_error`) the
    temporary file is removed and ``path`` is left as it was.
    """
    target = check_output_path(path, inputs=inputs, overwrite=overwrite)
    with output_lock(target):
        check_output_path(target, inputs=inputs, overwrite=overwrite)  # as it is now, locked
        try:
            fd, tmp = create_temp_beside(target)
        except OSError as exc:
            if disk_full(exc):
                raise disk_full_error(target) from None
            raise
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
        except BaseException as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            if disk_full(exc):
                raise disk_full_error(target) from None
            raise


def _hidden(target: str, suffix: str) -> str:
    """``.NAME{suffix}`` beside ``target`` (NAME cut so the name fits)."""
    folder, base = os.path.split(os.path.abspath(target))
    return os.path.join(folder, f".{_short(base)}{suffix}")


@contextlib.contextmanager
def output_lock(target: str | os.PathLike[str], *, shown: str | None = None) -> Iterator[None]:
    """Hold an exclusive lock on writing the local output ``target`` (a file or a folder,
    made or not; named ``shown`` in messages) while the block runs; another holder makes
    this raise :class:`OutputError` at once.

    The lock is ``flock(LOCK_EX | LOCK_NB)`` on ``.NAME.lock`` in ``target``'s folder,
    holding the holder's process id. The kernel releases it when the process ends, however
    it ends (``kill -9`` leaves at most the small file, never a held lock). The file is
    removed on release while still locked; an acquirer that finds, once locked, that its
    file is no longer the one at that name (removed, or replaced, in between) tries again,
    so two processes never both hold it. On a ``distributed`` cluster the workers write,
    but this process drives the export from start to the final rename: its lock covers
    them. Remote outputs (``s3://``) cannot be locked this way; they are not locked.
    Where there is no ``fcntl`` (Windows), or the filesystem has no ``flock`` (some
    network mounts), nothing is locked.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    shown = shown or os.fspath(target)
    path = _hidden(os.fspath(target), ".lock")
    while True:
        try:
            # never through a link: a planted one would have us truncate its target
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666)
        except OSError as exc:
            folder = os.path.dirname(path)
            if exc.errno == errno.ELOOP:
                raise OutputError(
                    f"cannot write {shown}: its lock file {path} is a symbolic link, which "
                    "minerva-dask does not follow: remove it"
                ) from None
            if not os.path.isdir(folder):
                raise OutputError(f"cannot write {shown}: folder {folder} does not exist") from None
            if exc.errno in (errno.EACCES, errno.EPERM) and os.path.lexists(path):
                raise OutputError(
                    f"cannot write {shown}: its lock file {path} cannot be opened "
                    f"({exc.strerror}; another user's export?)"
                ) from None
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise OutputError(
                    f"cannot write {shown}: folder {folder} is not writable"
                ) from None
            if disk_full(exc):
                raise disk_full_error(shown) from None
            raise OutputError(
                f"cannot write {shown}: cannot create {path} ({exc.strerror})"
            ) from None
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_nlink != 1:  # a pipe, or someone's
            os.close(fd)  # file hard-linked here: never written to
            raise OutputError(
                f"cannot write {shown}: its lock file {path} is not a lock file of ours (a "
                "link to another file, or not a regular file): remove it"
            )
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = ""
            with contextlib.suppress(OSError, ValueError, IndexError):
                holder = f" (process {int(os.pread(fd, 32, 0).split()[0])})"
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                # a filesystem without flock (some network mounts): exports are not locked
                with contextlib.suppress(OSError):
                    os.unlink(path)
                yield
                return
            raise OutputError(
                f"another minerva-dask export is writing {shown}{holder}; wait for it, "
                "or choose another output"
            ) from None
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # removed by the holder that just released it: lock the new one
    try:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)  # still locked: nobody else holds this file
        os.close(fd)


class FolderWatch:
    """Sees whether an export's work folder is still the one it made or resumed: it holds
    the folder open (so its inode cannot be reused by a folder made again at its name)
    from :meth:`watch` until :meth:`close` (or the end of a ``with`` block)."""

    def __init__(self) -> None:
        self.path: str | None = None
        self.fd: int | None = None

    def __enter__(self) -> FolderWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def watch(self, path: str) -> None:
        """Watch the folder at ``path`` (made by this export, or resumed by it)."""
        self.close()
        self.path = path
        with contextlib.suppress(OSError):
            self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
        self.fd = None

    def gone(self, target: str | os.PathLike[str]) -> OutputError | None:
        """The error to raise if the watched folder was removed or replaced (someone
        removed it mid-export: what is at its name cannot be trusted, and must not be put
        in place), else ``None`` (also when nothing is watched yet)."""
        if self.path is None:
            return None
        with contextlib.suppress(OSError):
            if self.fd is not None and os.path.samestat(os.fstat(self.fd), os.stat(self.path)):
                return None
        return OutputError(
            f"cannot write {os.fspath(target)}: its work folder {self.path} was removed or "
            "replaced during the export (by another program?); nothing was put in place: "
            "remove it if it is back (writes in flight may have made it again) and run it again"
        )
