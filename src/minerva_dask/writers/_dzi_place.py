"""Where a Deep Zoom export is written, and how it is put in place.

Everything is written into one hidden folder beside the target, ``.NAME.partial`` (for
``slide.dzi``: ``.slide.dzi.partial/``), which holds from its creation a state file,
``.minerva-dask.json``, naming the render (image, request, tile options) and whether it
may replace an existing output. ``resume`` continues only an unfinished export of the
same render; anything else in the way is refused, untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from typing import Any

from ..errors import BlockMismatchError, OutputError
from ._atomic import disk_full, disk_full_error
from ._meta import OutputMetadata
from ._store import StorePlan, finish, in_progress

__all__ = ["STATE", "open_partial", "place"]

STATE = ".minerva-dask.json"


def place(work: str, target: str, files: str, name: str) -> None:
    """Move the complete pyramid in ``work`` into place (see the module's docstring)."""
    aside = os.path.join(work, "replaced.dzi")
    had_dzi = os.path.lexists(target)
    if had_dzi:
        os.rename(target, aside)  # from here the old pyramid has no entry point
    try:
        plan = StorePlan(files, files, os.path.join(work, f"{name}_files"), None, "", False, True)
        finish(plan)  # swapped in, the old folder deleted
    except BaseException:
        if had_dzi:
            os.rename(aside, target)
        raise
    os.rename(os.path.join(work, f"{name}.dzi"), target)
    shutil.rmtree(work)


def open_partial(
    target: str,
    token: str,
    meta: OutputMetadata,
    exists: bool,
    *,
    overwrite: bool,
    resume: bool,
) -> str:
    """The hidden partial folder beside ``target`` to write into, made (with its state
    file) or resumed; refuses, before writing anything, what it must not destroy."""
    folder, base = os.path.split(os.path.abspath(target))
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {target}: folder {folder} does not exist")
    if exists and not (overwrite or resume):  # before "not writable": refused anyway
        raise OutputError(
            f"output {target} exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write {target}: folder {folder} is not writable")
    base = base.encode()[:200].decode(errors="ignore")
    work = os.path.join(folder, f".{base}.partial")
    state = _state(work)
    if resume and state is not None:
        if state.get("token") != token:
            raise OutputError(
                f"cannot resume into {target}: {work} is an unfinished export of another "
                "request, image or tile option; it was left untouched"
            )
        if exists and not (overwrite or state.get("overwrite")):
            raise OutputError(f"output {target} exists; pass overwrite=True to replace it")
        return work
    if resume and exists:
        how = (  # with both flags, saying "--overwrite replaces it" sent the user in a circle
            "nothing is left to resume; overwrite=True without resume=True (CLI: --overwrite "
            "alone) replaces it"
            if overwrite
            else "overwrite=True, CLI: --overwrite, replaces it"
        )
        raise OutputError(
            f"cannot resume into {target}: it is a complete export ({how}); it was left untouched"
        )
    if os.path.lexists(work):
        if state is None:
            raise OutputError(f"cannot write {target}: {work} is in the way (not ours)")
        if not overwrite:
            raise OutputError(
                f"an interrupted export of {target} is in {work}; pass resume=True (CLI: "
                "--resume) to continue it or overwrite=True (CLI: --overwrite) to start again"
            )
        shutil.rmtree(work)
    fresh = f"{work}.new-{os.urandom(4).hex()}"
    try:
        os.mkdir(fresh)
        with open(os.path.join(fresh, STATE), "w") as fh:
            json.dump(in_progress(token, meta.provenance, overwrite), fh)
        os.rename(fresh, work)  # the partial folder never exists without its state
    except BaseException as exc:
        shutil.rmtree(fresh, ignore_errors=True)
        if disk_full(exc):
            raise disk_full_error(target) from None
        raise
    return work


def _state(work: str) -> dict[str, Any] | None:
    with contextlib.suppress(OSError, ValueError):
        with open(os.path.join(work, STATE)) as fh:
            state = json.load(fh)
        if isinstance(state, dict) and state.get("state") == "in-progress":
            return state
    return None


def replacement_error(exc: BaseException, work: str, target: str, watch: Any, resume: bool) -> None:
    """On a failed export of ``target`` built in ``work``: raise what the user should see
    instead of ``exc``, cleaning up what cannot be resumed; return to let ``exc`` go on.

    A full disk: the partial folder removed (it holds the space), one line. Blocks that
    computed to another dtype or shape: removed too (a resume would fail the same way).
    A partial folder removed or replaced meanwhile (``watch``): that, in one line, not the
    ``FileNotFoundError`` of a tile it cut short."""
    if disk_full(exc):
        shutil.rmtree(work, ignore_errors=True)
        raise disk_full_error(target) from None
    if isinstance(exc, BlockMismatchError) and not resume:
        shutil.rmtree(work, ignore_errors=True)
        return
    if isinstance(exc, Exception) and (gone := watch.gone(target)):
        raise gone from None
