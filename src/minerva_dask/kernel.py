"""The composite kernel: raw channel planes to an RGB uint8 image. Imports numpy only.

``composite(planes, channels)`` takes planes shaped ``(c, y, x)`` in their raw dtype and
one style per plane (anything with ``start``, ``end``, ``color``, ``alpha``, ``inverted``,
``family``, ``coefficient``, e.g. :class:`minerva_dask.request.ResolvedChannel`) and
returns ``(y, x, 3)`` uint8.

Presets (``rendering.md`` section 4), each reproducing its reference exactly:

``linear`` (default)
    ``n = clip((x - s) / (e - s), 0, 1)`` (``n = x >= e`` when ``s == e``), optional
    ``1 - n``, optional ``n ** k`` (polynomial family), additive ``sum n * rgb * alpha``,
    ``round(255 * clip(acc, 0, 1) ** (1 / gamma))``. float32, in place: one accumulator
    ``(3, y, x)`` and two ``(y, x)`` scratch planes, whatever the channel count.
``omero``
    OMERO's server maths: an 8-bit quantum per channel ``floor(255 n + 0.5)`` (0 below
    the window, 255 at or above its end), ``255 - q`` when inverted, then per component
    ``int(R / 255 * q)`` (truncation) summed as integers and clipped at 255.
``minerva-2018``
    The 2018 minerva-lib ``stitch_tiles``: windows as fractions of the dtype maximum,
    float64 maths, gamma ``1 / 2.2``, ``uint8(255 * out)`` (truncation). Its NaN for
    ``s == e`` is not copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

__all__ = ["PRESETS", "ChannelStyle", "check_styles", "composite", "fill_background"]

PRESETS = {
    "linear": {"gamma": 1.0},
    "omero": {"gamma": 1.0},
    "minerva-2018": {"gamma": 2.2},
}
_LOCAL_FAMILIES = ("linear", "polynomial")
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_FLOAT32_TINY = float(np.finfo(np.float32).tiny)


class ChannelStyle(Protocol):
    """How one plane is drawn; window in raw values, colour RGB in 0..1."""

    start: float
    end: float
    color: tuple[float, float, float]
    alpha: float
    inverted: bool
    family: str
    coefficient: float


def check_styles(channels: Sequence[Any], preset: str) -> None:
    """Raise ``ValueError`` if ``composite`` cannot draw these styles with ``preset``."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    for style in channels:
        if getattr(style, "lut", None):
            raise ValueError(
                f"channel {getattr(style, 'index', -1) + 1}: lookup table {style.lut!r} can only "
                "be rendered by an OMERO server in composite mode; give a hex colour instead"
            )
        if style.family not in _LOCAL_FAMILIES:
            raise ValueError(
                f"channel {getattr(style, 'index', '?')}: quantization family {style.family!r} "
                "is only rendered by an OMERO server; use linear or polynomial"
            )


def fill_background(shape: tuple[int, int], color: Sequence[int]) -> np.ndarray:
    """An ``(height, width, 3)`` uint8 image of one colour (``color`` as 0..255 RGB)."""
    out = np.empty((*shape, 3), np.uint8)
    out[...] = np.asarray(color, np.uint8)
    return out


def composite(
    planes: np.ndarray,
    channels: Sequence[Any],
    *,
    preset: str = "linear",
    gamma: float | None = None,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Composite raw ``planes`` ``(c, y, x)`` into ``out`` ``(y, x, 3)`` uint8 and return it.

    ``planes`` is an array, or anything with ``shape``, ``ndim``, ``dtype`` whose iteration
    yields the ``(y, x)`` planes in order (the graph passes one that reads each plane as
    it is reached, so only one is held at a time).

    ``gamma`` overrides the preset's (``linear``: 1, ``minerva-2018``: 2.2); the output is
    ``acc ** (1 / gamma)``.

    >>> from types import SimpleNamespace as S
    >>> red = S(start=0, end=100, color=(1, 0, 0), alpha=1, inverted=False,
    ...         family="linear", coefficient=1)
    >>> composite(np.array([[[0, 50, 100]]], np.uint16), [red])[0].tolist()
    [[0, 0, 0], [128, 0, 0], [255, 0, 0]]
    """
    check_styles(channels, preset)
    if planes.ndim != 3 or planes.shape[0] != len(channels):
        raise ValueError(
            f"planes must be (c, y, x) with c = {len(channels)} styles, got {planes.shape}"
        )
    height, width = planes.shape[1:]
    if out is None:
        out = np.empty((height, width, 3), np.uint8)
    gamma = PRESETS[preset]["gamma"] if gamma is None else float(gamma)
    if gamma <= 0:
        raise ValueError(f"gamma must be > 0, got {gamma}")
    if preset == "omero":
        return _composite_omero(planes, channels, out)
    if preset == "minerva-2018":
        return _composite_2018(planes, channels, gamma, out)
    return _composite_linear(planes, channels, gamma, out)


def _float32_window(start: float, end: float) -> bool:
    """Whether float32 holds ``start``, ``end`` and ``end - start`` (a normal width)."""
    width = end - start
    return max(abs(start), abs(end), width) <= _FLOAT32_MAX and width >= _FLOAT32_TINY


def _normalise_into(plane: np.ndarray, style: Any, n: np.ndarray) -> None:
    """``n = clip((plane - start) / (end - start), 0, 1)`` in float32, in place; in
    float64 for a window that float32 cannot hold (``0:1e39`` would divide by inf)."""
    start, end = float(style.start), float(style.end)
    if end > start and not _float32_window(start, end):
        wide = np.subtract(plane, start, dtype=np.float64)
        np.divide(wide, end - start, out=wide)
        np.clip(wide, 0.0, 1.0, out=n, casting="unsafe")
    elif end > start:
        np.subtract(plane, np.float32(start), out=n, casting="unsafe")
        np.divide(n, np.float32(end - start), out=n)
        np.clip(n, 0.0, 1.0, out=n)
    else:
        np.greater_equal(plane, end, out=n, casting="unsafe")
    if style.family == "polynomial" and style.coefficient != 1.0:
        np.power(n, np.float32(style.coefficient), out=n)
    if style.inverted:
        np.subtract(np.float32(1.0), n, out=n)


def _composite_linear(
    planes: np.ndarray, channels: Sequence[Any], gamma: float, out: np.ndarray
) -> np.ndarray:
    """The accumulator's components start empty, not zeroed: the first channel to weigh
    on a component writes it (``n * w`` is ``0 + n * w`` exactly), a channel of one
    component at weight 1 is even normalised straight into it; components no channel
    touches are zeroed at the end. Three primary-coloured channels thus cost three
    normalisations and no adds."""
    height, width = planes.shape[1:]
    acc = np.empty((3, height, width), np.float32)
    written = [False, False, False]
    n = np.empty((height, width), np.float32)
    scaled = np.empty((height, width), np.float32)
    for plane, style in zip(planes, channels, strict=True):
        weights = [np.float32(component * style.alpha) for component in style.color]
        used = [k for k in range(3) if weights[k] != 0]
        if len(used) == 1 and weights[used[0]] == 1 and not written[used[0]]:
            _normalise_into(plane, style, acc[used[0]])
            written[used[0]] = True
            continue
        _normalise_into(plane, style, n)
        for k in used:
            if not written[k]:
                np.multiply(n, weights[k], out=acc[k])
                written[k] = True
            elif weights[k] == 1:
                np.add(acc[k], n, out=acc[k])
            else:
                np.multiply(n, weights[k], out=scaled)
                np.add(acc[k], scaled, out=acc[k])
    for k in range(3):
        if not written[k]:
            acc[k].fill(0)
    np.clip(acc, 0.0, 1.0, out=acc)
    if gamma != 1.0:
        np.power(acc, np.float32(1.0 / gamma), out=acc)
    np.multiply(acc, np.float32(255.0), out=acc)
    np.rint(acc, out=acc)
    for k in range(3):
        out[..., k] = acc[k]
    return out


def _quantum_omero(plane: np.ndarray, style: Any) -> np.ndarray:
    """OMERO's 8-bit quantum ``q`` (float64 holding integers 0..255)."""
    x = plane.astype(np.float64)
    start, end = float(style.start), float(style.end)
    if end > start:
        v = (x - start) / (end - start)
        if style.family == "polynomial":
            v = np.power(np.clip(v, 0, 1), style.coefficient)
        q = np.floor(255.0 * v + 0.5)
        q = np.where(x < start, 0.0, np.where(x >= end, 255.0, q))
    else:
        q = np.where(x >= end, 255.0, 0.0)
    if style.inverted:
        q = 255.0 - q
    return q


def _composite_omero(planes: np.ndarray, channels: Sequence[Any], out: np.ndarray) -> np.ndarray:
    acc = np.zeros((3, *planes.shape[1:]), np.int32)
    use_alpha = any(style.alpha != 1.0 for style in channels)
    for plane, style in zip(planes, channels, strict=True):
        q = _quantum_omero(plane, style)
        alpha = round(style.alpha * 255)
        for k, component in enumerate(style.color):
            value = round(component * 255)
            if value == 0:
                continue
            add = (value / 255.0 * q).astype(np.int32)
            if use_alpha:
                add = (add * alpha / 255.0).astype(np.int32)
            acc[k] += add
    np.minimum(acc, 255, out=acc)
    for k in range(3):
        out[..., k] = acc[k]
    return out


def _dtype_max(dtype: np.dtype) -> float:
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def _composite_2018(
    planes: np.ndarray, channels: Sequence[Any], gamma: float, out: np.ndarray
) -> np.ndarray:
    scale = _dtype_max(planes.dtype)
    acc = np.zeros((*planes.shape[1:], 3), np.float64)
    for plane, style in zip(planes, channels, strict=True):
        low, high = style.start / scale, style.end / scale
        x = plane / scale
        if high > low:
            n = np.clip((x - low) / (high - low), 0.0, 1.0)
        else:
            n = (x >= high).astype(np.float64)
        if style.family == "polynomial":
            n = n**style.coefficient
        if style.inverted:
            n = 1.0 - n
        acc += n[..., np.newaxis] * (np.asarray(style.color, np.float64) * style.alpha)
    np.clip(acc, 0.0, 1.0, out=acc)
    if gamma != 1.0:
        acc **= 1.0 / gamma
    out[...] = (255 * acc).astype(np.uint8)
    return out
