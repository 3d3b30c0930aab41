"""Check OME-NGFF ``multiscales`` metadata before using it: one clear line, never a traceback.

Each check raises ``ValueError`` naming the offending field as a JSON path
(``multiscales[0].datasets[1].path``); :mod:`.ome_zarr` turns it into a
:class:`~minerva_dask.errors.SourceError` naming the image.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["check_array", "check_multiscale", "dataset_scale"]

_MAX_SHOWN = 60


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def check_multiscale(attrs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The first multiscale of ``attrs`` and its dataset paths, checked.

    ``multiscales`` must be a non-empty list of objects; the first one's ``datasets`` a
    non-empty list of objects, each with a ``path`` that stays inside the group (relative,
    no ``..``); ``axes``, when given, a list of names or of objects with a ``name``.

    >>> check_multiscale({"multiscales": [{"datasets": [{"path": "0"}, {"path": "s/1"}]}]})[1]
    ['0', 's/1']
    >>> check_multiscale({"multiscales": [{"datasets": [{"path": "../x"}]}]})
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: multiscales[0].datasets[0].path '../x' must be a relative path inside ...
    """
    multiscales = attrs.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise ValueError(f"multiscales must be a non-empty list, got {_show(multiscales)}")
    for i, multiscale in enumerate(multiscales):
        if not isinstance(multiscale, dict):
            raise ValueError(f"multiscales[{i}] must be an object, got {_show(multiscale)}")
    multiscale = multiscales[0]
    datasets = multiscale.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        raise ValueError(f"multiscales[0].datasets must be a non-empty list, got {_show(datasets)}")
    paths = []
    for i, dataset in enumerate(datasets):
        where = f"multiscales[0].datasets[{i}]"
        if not isinstance(dataset, dict):
            raise ValueError(f"{where} must be an object, got {_show(dataset)}")
        path = dataset.get("path")
        if not isinstance(path, str) or not _inside(path):
            raise ValueError(
                f"{where}.path {_show(path)} must be a relative path inside the group "
                "(no '..', not absolute)"
            )
        paths.append(path)
    axes = multiscale.get("axes")
    if axes is not None:
        if not isinstance(axes, list):
            raise ValueError(f"multiscales[0].axes must be a list, got {_show(axes)}")
        for i, axis in enumerate(axes):
            name = axis.get("name") if isinstance(axis, dict) else axis
            if not isinstance(name, str) or not name:
                raise ValueError(
                    f"multiscales[0].axes[{i}] must be a name or an object with a 'name', "
                    f"got {_show(axis)}"
                )
    return multiscale, paths


def _inside(path: str) -> bool:
    if not path or path.startswith(("/", "\\")) or "\\" in path or ":" in path:
        return False
    parts = path.split("/")
    return all(part not in ("", ".", "..") for part in parts)


def dataset_scale(dataset: dict[str, Any], ndim: int, index: int) -> list[float] | None:
    """The ``scale`` transform of dataset ``index`` (one factor per dimension), checked:
    every factor a finite number above zero. ``None`` when there is none of ``ndim``."""
    where = f"multiscales[0].datasets[{index}].coordinateTransformations"
    transforms = dataset.get("coordinateTransformations")
    if transforms is None:
        return None
    if not isinstance(transforms, list):
        raise ValueError(f"{where} must be a list, got {_show(transforms)}")
    for k, transform in enumerate(transforms):
        if not isinstance(transform, dict):
            raise ValueError(f"{where}[{k}] must be an object, got {_show(transform)}")
        if transform.get("type") != "scale":
            continue
        scale = transform.get("scale")
        if not isinstance(scale, list):
            raise ValueError(f"{where}[{k}].scale must be a list, got {_show(scale)}")
        for value in scale:
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
                or value <= 0
            ):
                raise ValueError(
                    f"{where}[{k}].scale {_show(scale)} holds {_show(value)}: "
                    "every factor must be a number above zero"
                )
        if len(scale) == ndim:
            return [float(v) for v in scale]
    return None


def check_array(array: Any, index: int, path: str, first: Any) -> None:
    """Dataset ``index`` (at ``path``) holds real numbers, with as many dimensions and the
    same pixel type as dataset 0 (``first``), and no empty dimension."""
    where = f"multiscales[0].datasets[{index}] ({path!r})"
    try:
        dtype = np.dtype(array.dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biuf" or dtype.fields is not None:
        raise ValueError(
            f"{where} has dtype {array.dtype}; images need integers, floats or booleans"
        )
    if index and array.ndim != first.ndim:
        raise ValueError(
            f"{where} has {array.ndim} dimensions (shape {tuple(array.shape)}), "
            f"datasets[0] has {first.ndim}"
        )
    if index and dtype != np.dtype(first.dtype):
        raise ValueError(f"{where} has dtype {dtype}, datasets[0] has {first.dtype}")
    if any(int(n) < 1 for n in array.shape):
        raise ValueError(f"{where} has an empty dimension (shape {tuple(array.shape)})")
