"""Which files or URLs an image was read from, for its dask arrays too.

A :class:`~minerva_dask.Rendering` or raw region says where its pixels come from
(``inputs``), and no writer replaces those. Its bare dask array (``rendering.data``), or
anything dask derives from it (a slice, a stack, a rechunk), keeps the layers of the graph
that made it, and those layers are named after what they read: the renderers note each
layer's inputs here, and :func:`inputs_of` finds them again from any dask collection.
A layer's name is a token of its source and plan, so one name always means one input.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["inputs_of", "note_inputs"]

_MOST = 100_000  # layer names remembered (the oldest forgotten first): a few MB at most
_by_layer: dict[str, tuple[str, ...]] = {}
_lock = threading.Lock()


def note_inputs(layer: str, inputs: Iterable[str]) -> None:
    """Remember that the dask graph layer named ``layer`` reads ``inputs``."""
    inputs = tuple(inputs)
    if not inputs:
        return
    with _lock:
        _by_layer.pop(layer, None)
        _by_layer[layer] = inputs
        while len(_by_layer) > _MOST:
            del _by_layer[next(iter(_by_layer))]


def inputs_of(image: Any) -> tuple[str, ...]:
    """The paths or URLs ``image`` was read from: its own ``inputs`` (a Rendering, a raw
    region), else those noted for any layer of its dask graph; ``()`` for other data."""
    own = getattr(image, "inputs", None)
    if own is not None:
        return tuple(own)
    graph = getattr(image, "__dask_graph__", None)
    layers = getattr(graph(), "layers", None) if callable(graph) else None
    if not layers:
        return ()
    found: dict[str, None] = {}
    with _lock:
        for name in layers:
            for ref in _by_layer.get(name, ()):
                found[ref] = None
    return tuple(found)
