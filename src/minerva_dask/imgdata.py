"""OME-XML to OMERO ``imgData`` JSON: the converter the original Minerva project shipped.

Minerva keeps OME-XML (``metadata.xml``) beside its tiles; OMERO-style viewers want
``imgData`` (``api-contract.md`` section 2). :func:`imgdata_from_ome_xml` turns the
``<Image ID="Image:{uuid}">`` of a document into that JSON, for Minerva's tiled pyramids
(1024-pixel tiles, levels halving until the image fits one tile).

Two styles:

``"2018"`` (default)
    The keys and values the original converter wrote: channel windows
    ``0 .. 2**SignificantBits``, split-channel grids of the most square factor pair with a
    border of 2, ``tiles: true`` even for a single level.
``"omero"``
    What a real OMERO.web answers for the same image: windows ``0 .. 2**bits - 1`` (the
    pixel range), OMERO's ``sqrt`` rule for split-channel grids, ``tiles`` only for
    pyramids (and no pyramid keys otherwise), ``pixel_range``.
"""

from __future__ import annotations

import math
from typing import Any

from .colors import color_hex
from .errors import RequestError
from .geometry import MINERVA_TILE_SIZE, minerva_level_sizes
from .ome_xml import OmeImage, check_pixels, parse_ome_images

__all__ = ["MINERVA_TILE_SIZE", "imgdata_from_ome_xml", "minerva_level_sizes"]

SPLIT_BORDER = 2
_BITS = {
    "int8": 8,
    "uint8": 8,
    "int16": 16,
    "uint16": 16,
    "int32": 32,
    "uint32": 32,
    "float": 32,
    "double": 64,
    "bit": 1,
}


def _most_square(count: int) -> tuple[int, int]:
    """``(gridx, gridy)``: the factor pair of ``count`` closest to square, wider than tall."""
    rows = max(d for d in range(1, math.isqrt(count) + 1) if count % d == 0)
    return count // rows, rows


def _omero_grid(count: int) -> tuple[int, int]:
    """OMERO marshal.py: ``y = round(sqrt(c))``, ``x = y + 1`` if ``sqrt(c) > y`` else ``y``."""
    root = math.sqrt(count)
    rows = round(root)  # sqrt of an integer is never k + 0.5: rounding mode is moot
    return (rows + 1 if root > rows else rows), rows


def _split_channel(image: OmeImage, style: str) -> dict[str, Any]:
    grid = _most_square if style == "2018" else _omero_grid
    out = {}
    for key, count in (("g", image.size_c), ("c", image.size_c + 1)):
        gridx, gridy = grid(count)
        out[key] = {
            "width": image.size_x * gridx + SPLIT_BORDER * (gridx + 1),
            "height": image.size_y * gridy + SPLIT_BORDER * (gridy + 1),
            "border": SPLIT_BORDER,
            "gridx": gridx,
            "gridy": gridy,
        }
    return out


def _color_hex(rgb: tuple[float, float, float] | None) -> str:
    return "FFFFFF" if rgb is None else color_hex(rgb)


def imgdata_from_ome_xml(
    xml: str | bytes, image_id: str, *, style: str = "2018", tile: int = MINERVA_TILE_SIZE
) -> dict[str, Any]:
    """The ``imgData`` JSON (a dict) for ``<Image ID="Image:{image_id}">`` of ``xml``.

    ``image_id`` may be given with or without the ``Image:`` prefix. Raises
    :class:`RequestError` naming the image ids the document has when it lacks this one.
    """
    if style not in ("2018", "omero"):
        raise RequestError(f"style must be '2018' or 'omero', got {style!r}")
    try:
        images = parse_ome_images(xml)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    wanted = image_id if image_id.startswith("Image:") else f"Image:{image_id}"
    image = next((im for im in images if im.id == wanted), None)
    if image is None:
        have = ", ".join(im.id.removeprefix("Image:") for im in images)
        raise RequestError(
            f"the OME-XML has no image {wanted.removeprefix('Image:')!r}; its image ids are: {have}"
        )
    try:  # an unknown Type, sizes or SignificantBits out of range: one line naming it
        check_pixels(image)
    except ValueError as exc:
        raise RequestError(f"image {wanted.removeprefix('Image:')!r}: {exc}") from None
    bits = image.significant_bits or _BITS[image.pixel_type]
    top = 2**bits if style == "2018" else 2**bits - 1
    if image.pixel_type.startswith("int"):
        low = -(2 ** (_BITS[image.pixel_type] - 1)) if style == "omero" else 0
    else:
        low = 0
    channels = []
    for index in range(image.size_c):
        ome = image.channels[index] if index < len(image.channels) else None
        wave = ome.emission_wavelength_nm if ome else None
        label = (ome.name if ome and ome.name else None) or (
            str(_num(wave)) if wave is not None else str(index)
        )
        channels.append(
            {
                "emissionWave": _num(wave) if wave is not None else None,
                "label": label,
                "color": _color_hex(ome.color if ome else None),
                "inverted": False,
                "reverseIntensity": False,
                "family": "linear",
                "coefficient": 1.0,
                "window": {
                    "min": float(low),
                    "max": float(top),
                    "start": float(low),
                    "end": float(top),
                },
                "active": True,
            }
        )
    sizes = minerva_level_sizes(image.size_x, image.size_y, tile)
    pyramid = style == "2018" or len(sizes) > 1
    px, py, pz = image.physical_size_um
    name = image.name or image.id.removeprefix("Image:")
    data: dict[str, Any] = {
        "id": image.id.removeprefix("Image:"),
        "meta": {
            "imageName": name,
            "imageDescription": "",
            "imageAuthor": "",
            "imageId": image.id.removeprefix("Image:"),
            "pixelsType": image.pixel_type,
            "projectName": "Multiple",
            "projectId": None,
            "datasetName": "Multiple",
            "datasetId": None,
        },
        "tiles": pyramid,
        "size": {
            "width": image.size_x,
            "height": image.size_y,
            "z": image.size_z,
            "t": image.size_t,
            "c": image.size_c,
        },
        "pixel_size": {"x": px, "y": py, "z": pz},
        "channels": channels,
        "split_channel": _split_channel(image, style),
        "rdefs": {
            "model": "color",
            "projection": "normal",
            "defaultZ": 0,
            "defaultT": 0,
            "invertAxis": False,
        },
    }
    if pyramid:
        data["tile_size"] = {"width": tile, "height": tile}
        data["levels"] = len(sizes)
        data["zoomLevelScaling"] = {str(i): 1 / 2**i for i in range(len(sizes))}
        if style == "omero":
            data["resolutions"] = {
                str(i): {"sizeX": w, "sizeY": h} for i, (w, h) in enumerate(sizes)
            }
    if style == "omero":
        data["pixel_range"] = [low, top]
    return data


def _num(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value
