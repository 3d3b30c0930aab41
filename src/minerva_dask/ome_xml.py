"""Read the parts of an OME-XML document that rendering needs. Standard library only.

OME colours are signed 32-bit RGBA integers (``-1`` is opaque white); physical sizes carry
a unit attribute that defaults to micrometres.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from .colors import color_from_ome_int

__all__ = [
    "PIXEL_TYPES",
    "OmeChannel",
    "OmeImage",
    "check_pixels",
    "color_from_ome_int",
    "parse_ome_images",
]

PIXEL_TYPES = {  # OME's pixel type names (OME-XML Type, OMERO pixelsType) -> numpy dtype
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "float": "float32",
    "double": "float64",
    "bit": "uint8",
}
_UNIT_TO_UM = {
    "µm": 1.0,
    "um": 1.0,
    "micron": 1.0,
    "nm": 1e-3,
    "Å": 1e-4,
    "pm": 1e-6,
    "mm": 1e3,
    "cm": 1e4,
    "m": 1e6,
}


@dataclass(frozen=True, slots=True)
class OmeChannel:
    """One ``<Channel>``: name, colour, wavelengths in nm, samples per pixel."""

    name: str | None
    color: tuple[float, float, float] | None
    emission_wavelength_nm: float | None
    excitation_wavelength_nm: float | None
    samples_per_pixel: int


@dataclass(frozen=True, slots=True)
class OmeImage:
    """One ``<Image>`` with its ``<Pixels>``. Sizes in pixels, physical sizes in µm."""

    id: str
    name: str | None
    pixel_type: str
    size_x: int
    size_y: int
    size_z: int
    size_c: int
    size_t: int
    dimension_order: str
    significant_bits: int | None
    physical_size_um: tuple[float | None, float | None, float | None]
    channels: tuple[OmeChannel, ...]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if _local(child.tag) == name]


def _float(element: ET.Element, key: str) -> float | None:
    text = element.get(key)
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def _physical(pixels: ET.Element, axis: str) -> float | None:
    value = _float(pixels, f"PhysicalSize{axis}")
    if value is None:
        return None
    factor = _UNIT_TO_UM.get(pixels.get(f"PhysicalSize{axis}Unit", "µm"))
    return None if factor is None else value * factor


def _int(element: ET.Element, key: str, default: str) -> int:
    text = element.get(key, default)
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"<Pixels> {key}={text!r} is not an integer") from None


def _optional_int(text: str | None) -> int | None:
    """An integer attribute that may be absent or unreadable (then ``None``)."""
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


_BITS = {"int8": 8, "uint8": 8, "int16": 16, "uint16": 16, "int32": 32, "uint32": 32}
_BITS |= {"float": 32, "double": 64, "bit": 1}
MAX_SIDE = 2**31 - 1
MAX_CHANNELS = 2**16


def check_pixels(image: OmeImage) -> None:
    """Raise ``ValueError`` naming the ``<Pixels>`` attribute that makes ``image``
    unusable: an unknown ``Type``, a size out of range (``SizeX``, ``SizeY``, ``SizeZ``,
    ``SizeT`` from 1 to 2**31 - 1, ``SizeC`` to 65536), ``SignificantBits`` out of
    1..64 or above the type's bits.

    >>> image = parse_ome_images('<OME><Image ID="Image:1"><Pixels Type="uint16" '
    ...     'SizeX="5" SizeY="5" SignificantBits="100000"/></Image></OME>')[0]
    >>> check_pixels(image)
    Traceback (most recent call last):
    ...
    ValueError: <Pixels> SignificantBits=100000 must be from 1 to 16 (Type uint16)
    """
    if image.pixel_type not in _BITS:
        raise ValueError(
            f"<Pixels> Type={image.pixel_type!r} is not one of {', '.join(sorted(_BITS))}"
        )
    sizes = {"SizeX": image.size_x, "SizeY": image.size_y, "SizeZ": image.size_z}
    sizes |= {"SizeC": image.size_c, "SizeT": image.size_t}
    for key, value in sizes.items():
        top = MAX_CHANNELS if key == "SizeC" else MAX_SIDE
        if not 1 <= value <= top:
            raise ValueError(f"<Pixels> {key}={value} must be from 1 to {top}")
    bits = image.significant_bits
    top = _BITS[image.pixel_type]
    if bits is not None and not 1 <= bits <= top:
        raise ValueError(
            f"<Pixels> SignificantBits={bits} must be from 1 to {top} (Type {image.pixel_type})"
        )


def parse_ome_images(xml: str | bytes) -> list[OmeImage]:
    """Every ``<Image>`` of an OME-XML document, in document order.

    Raises ``ValueError`` when the text is not XML or holds no ``<Image>``.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValueError(f"not valid OME-XML: {exc}") from None
    images = []
    for image in root.iter():
        if _local(image.tag) != "Image":
            continue
        pixels_list = _children(image, "Pixels")
        if not pixels_list:
            continue
        pixels = pixels_list[0]
        channels = []
        for channel in _children(pixels, "Channel"):
            color = None
            if channel.get("Color") not in (None, ""):
                try:
                    color = color_from_ome_int(int(channel.get("Color", "-1")))[0]
                except ValueError:
                    color = None
            channels.append(
                OmeChannel(
                    name=channel.get("Name") or None,
                    color=color,
                    emission_wavelength_nm=_float(channel, "EmissionWavelength"),
                    excitation_wavelength_nm=_float(channel, "ExcitationWavelength"),
                    samples_per_pixel=_optional_int(channel.get("SamplesPerPixel")) or 1,
                )
            )
        bits = pixels.get("SignificantBits")  # kept when not 1..64: check_pixels says so
        images.append(
            OmeImage(
                id=image.get("ID", ""),
                name=image.get("Name") or None,
                pixel_type=pixels.get("Type", ""),
                size_x=_int(pixels, "SizeX", "0"),
                size_y=_int(pixels, "SizeY", "0"),
                size_z=_int(pixels, "SizeZ", "1"),
                size_c=_int(pixels, "SizeC", "1"),
                size_t=_int(pixels, "SizeT", "1"),
                dimension_order=pixels.get("DimensionOrder", "XYZCT"),
                significant_bits=_optional_int(bits),
                physical_size_um=(
                    _physical(pixels, "X"),
                    _physical(pixels, "Y"),
                    _physical(pixels, "Z"),
                ),
                channels=tuple(channels),
            )
        )
    if not images:
        raise ValueError("the OME-XML document holds no <Image> with <Pixels>")
    return images
