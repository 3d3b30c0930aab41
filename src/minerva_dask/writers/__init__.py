"""Writers: rendered arrays to files. They never see a source, only arrays (or row blocks)
and metadata, and never decide how tasks run: a runner is handed to them (see
:mod:`._runner`). The public exports with their options are in :mod:`minerva_dask.exports`.

``.png`` (in memory, atomic), ``.ome.tif``/``.ome.tiff`` (streamed pyramidal OME-TIFF),
``.ome.zarr``/``.zarr`` (multiscale OME-Zarr, resumable), ``.dzi`` (Deep Zoom, resumable;
channel groups with a viewer: :func:`write_dzi_groups`). :func:`output_format` tells which
from a file name.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import OutputError
from .png import encode_png, write_png

__all__ = [
    "FORMATS",
    "ExportResult",
    "OutputMetadata",
    "check_format_options",
    "encode_png",
    "output_format",
    "write_dzi",
    "write_dzi_groups",
    "write_ome_tiff",
    "write_ome_tiff_planes",
    "write_ome_zarr",
    "write_png",
]

FORMATS = {
    ".png": "png",
    ".ome.tif": "ome-tiff",
    ".ome.tiff": "ome-tiff",
    ".ome.zarr": "ome-zarr",
    ".zarr": "ome-zarr",
    ".dzi": "dzi",
}


def output_format(path: str | os.PathLike[str], format: str | None = None) -> str:
    """``png``, ``ome-tiff``, ``ome-zarr`` or ``dzi``: an explicit ``format``, else from the name.

    >>> output_format("slide.ome.tif"), output_format("out.zarr/"), output_format("x", "png")
    ('ome-tiff', 'ome-zarr', 'png')
    """
    known = sorted(set(FORMATS.values()))
    if format is not None:
        if format not in known:
            raise OutputError(f"unknown output format {format!r}; supported: {', '.join(known)}")
        return format
    name = os.fspath(path).rstrip("/").lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if name.endswith(suffix):
            return FORMATS[suffix]
    raise OutputError(
        f"cannot tell the output format of {os.fspath(path)!r} from its extension; "
        "use .png, .ome.tif, .ome.tiff, .ome.zarr, .zarr or .dzi, or pass format='ome-tiff' "
        "(CLI: --format ome-tiff)"
    )


def __getattr__(name: str):  # the big writers import their libraries on first use
    if name in ("ExportResult", "OutputMetadata"):  # only the big writers need these
        from . import _meta

        return getattr(_meta, name)
    if name in ("write_ome_tiff", "write_ome_tiff_planes"):
        from . import ome_tiff

        return getattr(ome_tiff, name)
    if name == "write_ome_zarr":
        from .ome_zarr import write_ome_zarr

        return write_ome_zarr
    if name in ("write_dzi", "write_dzi_groups"):
        from . import dzi, dzi_viewer

        return getattr(dzi if name == "write_dzi" else dzi_viewer, name)
    raise AttributeError(name)


# An option of one output format: the formats it applies to and its default. Another
# value for another format is refused (it was ignored: --compression jpeg gave a PNG).
_FORMAT_OPTIONS: dict[str, tuple[tuple[str, ...], Any]] = {
    "compression": (("ome-tiff",), "deflate"),
    "zarr_version": (("ome-zarr",), "0.5"),
    "resume": (("ome-zarr", "dzi"), False),
    "tile_size": (("dzi",), 254),
    "overlap": (("dzi",), 1),
    "tile_format": (("dzi",), "jpeg"),
    "tile_quality": (("dzi",), 75),
}


def check_format_options(fmt: str, output: Any, **values: Any) -> None:
    """Refuse a value other than its default of an option of another format."""
    for name, value in values.items():
        formats, default = _FORMAT_OPTIONS[name]
        if fmt not in formats and value != default:
            flag = "--" + name.replace("_", "-")
            raise OutputError(
                f"{name} (CLI: {flag}) applies to {' and '.join(formats)} output, not {fmt} "
                f"({output})"
            )
