"""NGFF (OME-Zarr) metadata of a pyramid, rendered RGB or raw planes: multiscales, omero."""

from __future__ import annotations

from typing import Any

from ._meta import OutputMetadata

__all__ = ["AXES", "level_metadata", "ngff_attributes"]

AXES = ("c", "y", "x")  # the stored order, as named in the multiscales axes


def level_metadata(
    shapes: list[tuple[int, int]], meta: OutputMetadata, version: str
) -> dict[str, Any]:
    """``multiscales`` and ``omero`` of a pyramid of ``shapes`` (level 0 first)."""
    px, py = meta.pixel_size_um or (1.0, 1.0)
    unit = {"unit": "micrometer"} if meta.pixel_size_um else {}
    datasets = [
        {
            "path": str(level),
            "coordinateTransformations": [
                {"type": "scale", "scale": [1.0, py * 2**level, px * 2**level]}
            ],
        }
        for level in range(len(shapes))
    ]
    multiscale = {
        "name": meta.name,
        "axes": [
            {"name": "c", "type": "channel"},
            {"name": "y", "type": "space", **unit},
            {"name": "x", "type": "space", **unit},
        ],
        "datasets": datasets,
        "metadata": {
            "method": "2x2 mean of the level above (odd edges repeated)",
            "description": meta.description(),
        },
    }
    if version == "0.4":
        multiscale["version"] = "0.4"
    omero = {
        "name": meta.name,
        "version": version,
        "rdefs": {"model": "color"},
        "channels": meta.omero_channels(),  # Red, Green, Blue, or a raw export's planes
    }
    return {"multiscales": [multiscale], "omero": omero}


def ngff_attributes(
    shapes: list[tuple[int, int]], meta: OutputMetadata, version: str
) -> dict[str, Any]:
    """The group attributes of the pyramid: under ``ome`` for 0.5, at the top for 0.4."""
    attrs = level_metadata(shapes, meta, version)
    return {"ome": {"version": "0.5", **attrs}} if version == "0.5" else attrs
