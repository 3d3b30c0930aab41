"""``crop(..., raw=True)``: write a request's region unrendered (see :mod:`.raw`).

The same planning, budgets, scheduler and writers as a rendered export; only the pixels
differ (the source's planes instead of the composite).
"""

from __future__ import annotations

import os
from typing import Any

from .errors import OutputError, RequestError

__all__ = ["check_raw_options", "write_raw"]


def check_raw_options(fmt: str, preset: str, gamma: Any, background: Any) -> None:
    """Refuse, before anything is read, what a raw export cannot honour."""
    if fmt in ("png", "dzi"):
        name = "PNG" if fmt == "png" else "Deep Zoom"
        raise OutputError(
            f"a raw export keeps the image's pixel type and one plane per channel, which {name} "
            f"cannot hold: write .ome.tif or .ome.zarr (or drop --raw for a rendered {name})"
        )
    if preset != "linear" or gamma is not None:
        raise RequestError("--preset and --gamma shape a rendering; a raw export has none")
    if background not in ("black", None):
        raise RequestError("--background colours a rendering; a raw export is 0 outside the image")


def write_raw(region: Any, output: str | os.PathLike[str], fmt: str, **options: Any) -> Any:
    """Write ``region`` (a :class:`~minerva_dask.raw.RawRegion`) as OME-Zarr or OME-TIFF;
    ``options`` are the writer's (chunk, client, progress, overwrite...)."""
    from .writers._meta import OutputMetadata

    if fmt == "ome-zarr":
        from .exports import to_ome_zarr

        options.pop("compression", None)
        return to_ome_zarr(region, output, **options)
    storage_options = options.pop("storage_options", None)
    for key in ("version", "shard", "resume"):
        options.pop(key, None)
    from functools import partial

    from .exports import to_ome_tiff_planes
    from .writers._upload import to_file

    meta = OutputMetadata.of(region)
    if region.dtype.kind != "u":
        raise OutputError(
            f"raw OME-TIFF holds unsigned integer planes; this image is {region.dtype}: "
            "write .ome.zarr instead"
        )
    write = partial(
        to_ome_tiff_planes,
        region.data,
        channel_names=[name for name, _, _ in meta.channels],
        metadata=meta,
        **options,
    )
    return to_file(  # a URL: written here, uploaded whole
        write,
        output,
        inputs=region.inputs,
        storage_options=storage_options,
        overwrite=options.get("overwrite", False),
    )
