"""``minerva-dask info``: what an image holds, from its metadata only.

Format, pyramid levels (sizes, downsamples, tile or chunk sizes), pixel type, z/t/c sizes,
channels (names, default colours and windows), physical pixel size, and a request URL for
the whole image that parses back into the same request. Nothing but metadata is read: a
source's ``info`` is filled when it is opened (OME-XML, NGFF attributes, imgData).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from .colors import color_hex
from .request import RenderRequest
from .request_url import default_request
from .sources.base import capabilities

__all__ = ["image_summary", "summary_text", "whole_image_request"]

_FORMATS = {
    "OmeTiffSource": "OME-TIFF",
    "OmeZarrSource": "OME-Zarr",
    "OmeroSource": "OMERO",
    "MinervaSource": "Minerva",
}


def _format_name(source: Any) -> str:
    kind = _FORMATS.get(type(source).__name__, type(source).__name__)
    ref = str(capabilities(source).ref or "").lower().split("?", 1)[0]
    if kind == "OME-TIFF":
        if ref.endswith(".qptiff"):
            return "QPTIFF (TIFF)"
        if ref.endswith(".svs"):
            return "Aperio SVS (TIFF)"
        if not ref.endswith((".ome.tif", ".ome.tiff")):
            return "TIFF"
    return kind


def whole_image_request(source: Any) -> RenderRequest:
    """The image's own channel defaults over the whole image, named as the source wants
    it named (an OMERO image id; ``0`` elsewhere, a placeholder)."""
    info = source.info
    shown = [c.index for c in info.channels if c.active][:4] or [0]  # default_request's
    request = default_request(info, channels=shown)
    image_id = getattr(source, "image_id", None)
    return replace(request, image_id=str(image_id) if image_id is not None else "0")


def image_summary(source: Any) -> dict[str, Any]:
    """A JSON-ready description of ``source``'s image (see the module's docstring)."""
    info = source.info
    levels = [
        {
            "level": i,
            "width": lv.width,
            "height": lv.height,
            "downsample": [float(lv.downsample[0]), float(lv.downsample[1])],
            "tile": [lv.tile_width, lv.tile_height],
        }
        for i, lv in enumerate(info.levels)
    ]
    channels = [
        {
            "index": c.index,
            "name": c.name,
            "color": color_hex(c.color),
            "window": [c.window[0], c.window[1]],
            "active": c.active,
        }
        for c in info.channels
    ]
    return {
        "name": info.name,
        "format": _format_name(source),
        "tile_mode": capabilities(source).tile_mode,
        "dtype": str(info.dtype),
        "size": {
            "x": info.width,
            "y": info.height,
            "z": info.size_z,
            "t": info.size_t,
            "c": info.size_c,
        },
        "pixel_size_um": list(info.pixel_size_um) if info.pixel_size_um else None,
        "levels": levels,
        "channels": channels,
        "request": whole_image_request(source).to_url(),
    }


def _num(value: float) -> str:
    return f"{value:g}"


def summary_text(summary: dict[str, Any]) -> str:
    """``summary`` (from :func:`image_summary`) as lines for a person."""
    size = summary["size"]
    px = summary["pixel_size_um"]
    lines = [
        f"Image:       {summary['name']}",
        f"Format:      {summary['format']}"
        + ("" if summary["tile_mode"] == "raw" else f" ({summary['tile_mode']} tiles)"),
        f"Pixel type:  {summary['dtype']}",
        f"Size:        {size['x']} x {size['y']} px, c={size['c']}, z={size['z']}, t={size['t']}",
        "Pixel size:  "
        + (f"{_num(px[0])} x {_num(px[1])} µm" if px else "unknown (not in the metadata)"),
        f"Levels:      {len(summary['levels'])}",
    ]
    for lv in summary["levels"]:
        fx, fy = lv["downsample"]
        down = f"1/{_num(fx)}" if fx == fy else f"1/{_num(fx)} x 1/{_num(fy)}"
        lines.append(
            f"  {lv['level']:>3}  {lv['width']:>7} x {lv['height']:<7} {down:<12} "
            f"tiles {lv['tile'][0]} x {lv['tile'][1]}"
        )
    lines.append(f"Channels:    {size['c']}")
    for ch in summary["channels"]:
        start, end = ch["window"]
        hidden = "" if ch["active"] else "  (hidden by default)"
        lines.append(
            f"  {ch['index'] + 1:>3}  {ch['name']:<20} #{ch['color']}  "
            f"{_num(start)}:{_num(end)}{hidden}"
        )
    lines.append(f"Request:     {summary['request']}")
    return "\n".join(lines)


def run_info(args: Any) -> int:
    """The ``info`` subcommand: the summary on stdout (``--json``: as JSON)."""
    import sys

    from .errors import RequestError
    from .sources import open_source

    if args.minerva is not None:
        if args.image is not None:
            raise RequestError("give IMAGE or --minerva UUID, not both")
        source = open_source(minerva=args.minerva, mode=args.minerva_mode)
    elif args.omero is not None:
        image_id = (args.image or "").strip("/")
        if not image_id.isdigit():
            raise RequestError(
                "with --omero SERVER, IMAGE is the OMERO image id: minerva-dask info "
                "--omero https://omero.example.org 548111"
            )
        source = open_source(
            omero=args.omero, image_id=image_id, mode=args.omero_mode, verify=not args.insecure
        )
    elif args.image is None:
        raise RequestError(
            "no image given: minerva-dask info IMAGE (a path or URL), or --omero SERVER "
            "IMAGE_ID, or --minerva UUID"
        )
    else:
        source = open_source(args.image, storage_options=dict(args.storage_option) or None)
    summary = image_summary(source)
    text = json.dumps(summary, indent=2) if args.json else summary_text(summary)
    sys.stdout.write(text + "\n")
    return 0
