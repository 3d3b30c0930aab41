"""Read a ``(c, y, x)`` block out of an n-dimensional array with named axes.

Shared by the OME-TIFF and OME-Zarr sources, which both end up with a zarr array whose
axes are some order of ``T, C, Z, Y, X`` (``C`` being OME channels or TIFF samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..geometry import Rect

__all__ = ["block_selection", "check_axes", "read_block"]

_KNOWN = set("TCZYX")


def check_axes(axes: str) -> None:
    """Raise ``ValueError`` unless ``axes`` has Y and X and only known letters.

    ``_`` marks an axis of size 1 that is always read at index 0.
    """
    letters = axes.replace("_", "")
    if "Y" not in letters or "X" not in letters or len(set(letters)) != len(letters):
        raise ValueError(f"axes {axes!r} must hold Y and X once each, other letters at most once")
    unknown = set(letters) - _KNOWN
    if unknown:
        raise ValueError(f"axes {axes!r} hold unsupported axes {''.join(sorted(unknown))}")


def _channel_selector(channels: Sequence[int]) -> slice | list[int]:
    first = channels[0]
    if list(channels) == list(range(first, first + len(channels))):
        return slice(first, first + len(channels))
    return list(channels)


def block_selection(
    axes: str, rect: Rect, channels: Sequence[int], z: int, t: int
) -> tuple[list[Any], list[str]]:
    """The per-axis selection that reads ``rect`` of ``channels`` at ``z``, ``t``, and
    the letters of the axes it keeps."""
    x0, y0 = int(rect.x), int(rect.y)
    x1, y1 = x0 + int(rect.width), y0 + int(rect.height)
    selection: list[Any] = []
    kept: list[str] = []
    for axis in axes:
        if axis == "Y":
            selection.append(slice(y0, y1))
            kept.append(axis)
        elif axis == "X":
            selection.append(slice(x0, x1))
            kept.append(axis)
        elif axis == "C":
            selection.append(_channel_selector(channels))
            kept.append(axis)
        elif axis == "Z":
            selection.append(z)
        elif axis == "T":
            selection.append(t)
        else:  # "_": an axis of size 1
            selection.append(0)
    return selection, kept


def read_block(
    array: Any, axes: str, rect: Rect, channels: Sequence[int], z: int, t: int
) -> np.ndarray:
    """Read ``rect`` of the given channels, plane ``z`` and time ``t`` as ``(c, y, x)``.

    ``array`` is anything with zarr's ``oindex`` (or plain numpy); ``axes`` names its
    dimensions with the letters ``T C Z Y X``. Arrays without ``C`` have one channel.
    """
    selection, kept = block_selection(axes, rect, channels, z, t)
    if "C" not in axes and list(channels) != [0]:
        raise IndexError(f"channels {list(channels)} asked of a single-channel image")
    if any(isinstance(s, list) for s in selection) and hasattr(array, "oindex"):
        block = np.asarray(array.oindex[tuple(selection)])
    else:  # plain slicing; numpy also takes one list among ints and slices
        block = np.asarray(array[tuple(selection)])
    if "C" not in kept:
        block = block[np.newaxis]
        kept.insert(0, "C")
    order = [kept.index(axis) for axis in "CYX"]
    if order != [0, 1, 2]:
        block = block.transpose(order)
    return block
