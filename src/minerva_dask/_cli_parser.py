"""The ``minerva-dask`` argument parser: every subcommand, option and help text."""

from __future__ import annotations

import argparse
from typing import Any, NoReturn

from . import __version__
from ._cli_types import add_storage_option, add_verbosity
from ._console import one_line

__all__ = ["build_parser"]


_CROP_HELP = """\
Render a composite of chosen channels of a microscopy image to PNG, or to a pyramidal
OME-TIFF or OME-Zarr (the format follows the output's name, or --format).

REQUEST is an OMERO.figure render_scaled_region URL (or OMERO.web's render_image, the
whole plane, or render_image_region with region= or tile=), or just its path and query:
    '/0/0/0/?c=1|300:12000$0000FF,-2|0:65535$00FF00,3|500:9000$FF0000&region=0,0,8192,8192'
  c=         channels, 1-based: INDEX|START:END$COLOUR, comma-separated. START:END is the
             intensity window in raw pixel values; COLOUR is hex (FF0000 = red).
             A leading '-' lists a channel but hides it.
  region=    x,y,width,height in full-resolution pixels (may reach outside the image).
  max_size=  the largest side of the output in pixels (default 2000); the pyramid level
             is chosen so the output is no bigger, never upsampled.
  q=         JPEG quality asked of an OMERO server (--jpeg-quality overrides it).
  p=         z projection: intmax|START:END, intmean|START:END or intsum|START:END
             (0-based planes, END included; no range: all), or normal (plane z).
Quote the request: it contains characters the shell treats specially ($ and |).

With no REQUEST, the image's own channel settings are used for the whole image.
With neither REQUEST nor --image, the built-in demo image is rendered to out.png.

examples:
  minerva-dask crop
  minerva-dask crop '/0/0/0/?c=1|0:30000$0000FF&region=0,0,4096,4096' \
      --image slide.ome.tif -o fig.png
  minerva-dask crop --image s3://bucket/slide.ome.zarr --max-size 1024 -o overview.png
"""


def _group(text: str) -> tuple[str | None, str]:
    name, sep, request = text.partition("=")
    if sep and ("/" in name or "?" in name or "&" in name):  # a request alone: c=... is no name
        return None, text
    if not sep or not name.strip() or not request:
        raise argparse.ArgumentTypeError(f"expected [NAME=]REQUEST, got {text!r}")
    return name.strip(), request


class _Parser(argparse.ArgumentParser):
    """argparse, but a mistake on the command line is one line (exit 2), like every
    other error, not the usage text followed by the error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"minerva-dask: error: {one_line(message)} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="minerva-dask",
        description="Render composites of huge multiplexed microscopy images, tile by tile.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    crop = commands.add_parser(
        "crop",
        help="render a region to PNG, OME-TIFF or OME-Zarr",
        description=_CROP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    crop.add_argument("request", nargs="?", help="OMERO.figure URL or /id/z/t/?c=...&region=...")
    crop.add_argument(
        "--image",
        "-i",
        metavar="PATH_OR_URL",
        help="OME-TIFF or OME-Zarr: local path, s3://..., https://...",
    )
    crop.add_argument(
        "-o",
        "--output",
        default="out.png",
        metavar="OUTPUT",
        help="output: a .png file, or a folder to write out.png into; .ome.tif/.ome.tiff "
        "(pyramidal, streamed) or .ome.zarr/.zarr (multiscale, resumable), local or an "
        "fsspec URL (default: out.png)",
    )
    crop.add_argument(
        "--format",
        choices=("png", "ome-tiff", "ome-zarr", "dzi"),
        help="output format, when the file name does not say",
    )
    crop.add_argument(
        "--max-size",
        type=int,
        metavar="PIXELS",
        help="largest output side; overrides max_size in the request",
    )
    crop.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="largest output in pixels, refused before any read beyond it (default "
        "2147483647 for PNG, 2^40 for OME-TIFF/OME-Zarr)",
    )
    crop.add_argument(
        "--raw",
        action="store_true",
        help="write the shown channels unrendered (.ome.tif / .ome.zarr): the image's pixel "
        "type, one plane per channel, names, colours and windows in the metadata",
    )
    crop.add_argument(
        "--auto-windows",
        nargs="?",
        const="0.1,99.9",
        default=None,
        metavar="LOW,HIGH",
        help="set each shown channel's window to these percentiles (default 0.1,99.9) of a "
        "coarse overview, and print the resulting request URL on standard output",
    )
    crop.add_argument(
        "--background",
        default=None,
        metavar="COLOUR",
        help="colour outside the image: black (default), omero (#DDDDDD), or hex",
    )
    crop.add_argument(
        "--gamma", type=float, help="output gamma (default 1, or 2.2 for minerva-2018)"
    )
    crop.add_argument(
        "--preset",
        default="linear",
        choices=("linear", "omero", "minerva-2018"),
        help="rendering maths: linear (default), omero (OMERO server's 8-bit maths), "
        "minerva-2018 (the 2018 crop script)",
    )
    omero = crop.add_argument_group(
        "OMERO",
        "read from an OMERO.web server (a full OMERO.figure URL names it too); "
        "credentials from OMERO_USERNAME/OMERO_PASSWORD, OMERO_SESSION or OME_COOKIE",
    )
    omero.add_argument(
        "--omero",
        metavar="SERVER",
        help="OMERO.web base URL, e.g. "
        "https://omero.example.org (the image id comes from the request path)",
    )
    omero.add_argument(
        "--omero-mode",
        choices=("composite", "windowed"),
        default="composite",
        help="composite (default): OMERO renders each tile, exact OMERO colours; "
        "windowed: one grey tile per channel, coloured and added here",
    )
    omero.add_argument(
        "--omero-compatible",
        action="store_true",
        help="reproduce OMERO.figure's own answer: its level rule (the output "
        "may exceed max_size), native level size, grey #DDDDDD padding",
    )
    omero.add_argument(
        "--jpeg-quality",
        type=float,
        default=None,
        metavar="Q",
        help="JPEG quality 0..1 asked of the server (default: the request's q, else 0.95)",
    )
    omero.add_argument(
        "--insecure",
        action="store_true",
        help="do not verify the server's TLS certificate (only for this server)",
    )
    minerva = crop.add_argument_group(
        "Minerva",
        "read from the Minerva cloud; settings and credentials from MINERVA_* "
        "variables (MINERVA_USERNAME, MINERVA_PASSWORD, MINERVA_API_URL, "
        "MINERVA_USER_POOL_ID, MINERVA_CLIENT_ID, MINERVA_REGION, MINERVA_BUCKET) or the "
        "config file; the image id in the request path is then a placeholder",
    )
    minerva.add_argument("--minerva", metavar="UUID", help="the Minerva image uuid")
    minerva.add_argument(
        "--minerva-mode",
        choices=("raw", "render-tile"),
        default="raw",
        help="raw (default): 16-bit tiles from S3; render-tile: the API's lossy 8-bit rendering",
    )
    crop.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="compute on a running dask cluster, e.g. tcp://10.0.0.5:8786",
    )
    add_storage_option(
        crop,
        "fsspec option for remote images (repeatable); whole_file_max_bytes=N: fetch a "
        "TIFF whole from an HTTP server without Range support when at most N bytes (64 MiB)",
    )
    export = crop.add_argument_group("big exports (OME-TIFF, OME-Zarr)")
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing OME-TIFF / OME-Zarr / Deep Zoom output",
    )
    export.add_argument(
        "--resume",
        action="store_true",
        help="OME-Zarr, Deep Zoom: continue an interrupted export, skipping written chunks",
    )
    export.add_argument(
        "--local-cluster",
        type=int,
        metavar="N",
        help="compute on a local dask cluster of N worker processes",
    )
    export.add_argument(
        "--memory-limit", metavar="SIZE", help="memory limit of each local-cluster worker, e.g. 2GB"
    )
    export.add_argument(
        "--compression",
        default="deflate",
        choices=("deflate", "jpeg", "lzw", "zstd", "none"),
        help="OME-TIFF tile compression (default: deflate)",
    )
    export.add_argument(
        "--zarr-version",
        default="0.5",
        choices=("0.5", "0.4"),
        help="OME-Zarr version: 0.5 (zarr v3, default) or 0.4 (zarr v2)",
    )
    dzi = crop.add_argument_group(
        "Deep Zoom (.dzi, for OpenSeadragon and Minerva Story)",
        "-o slide.dzi writes slide.dzi and slide_files/ as pyvips dzsave does; with --group, "
        "-o FOLDER gets one pyramid per group and index.html, a viewer that works offline",
    )
    dzi.add_argument(
        "--group",
        action="append",
        type=_group,
        default=[],
        metavar="[NAME=]REQUEST",
        help="a channel group: its name on the viewer page (default: its channels' names) "
        "and its request (repeatable; instead of REQUEST)",
    )
    dzi.add_argument("--title", help="the viewer page's title (default: the image's name)")
    dzi.add_argument(
        "--tile-size", type=int, default=254, metavar="PIXELS", help="tile side (default 254)"
    )
    dzi.add_argument(
        "--overlap", type=int, default=1, metavar="PIXELS", help="tile overlap (default 1)"
    )
    dzi.add_argument(
        "--tile-format", choices=("jpeg", "png"), default="jpeg", help="tile format (jpeg)"
    )
    dzi.add_argument(
        "--tile-quality",
        type=int,
        default=75,
        metavar="1-100",
        help="JPEG tile quality (default 75, as pyvips); --jpeg-quality is the OMERO server's",
    )
    export.add_argument(
        "--shard",
        type=int,
        metavar="N",
        help="OME-Zarr 0.5: N x N chunks per stored shard (default 4; 1: unsharded); "
        "0.4 is never sharded",
    )
    crop.add_argument(
        "--png-level",
        type=int,
        choices=range(10),
        metavar="0-9",
        help="PNG zlib level (default 3: within 10%% of level 6's size, much faster; "
        "6 or 9 for smaller files)",
    )
    crop.add_argument(
        "--no-overwrite",
        action="store_true",
        help="fail if a PNG output exists (PNG is replaced by default)",
    )
    crop.add_argument(
        "-q", "--quiet", action="store_true", help="print nothing but errors and warnings"
    )
    crop.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    imgdata = commands.add_parser(
        "imgdata",
        help="convert OME-XML (metadata.xml) to OMERO imgData JSON",
        description="Write the OMERO imgData JSON of one image of an OME-XML document, as "
        "the original Minerva converter did.",
    )
    imgdata.add_argument("xml", metavar="METADATA.xml", help="OME-XML document")
    imgdata.add_argument(
        "--image-id",
        required=True,
        metavar="ID",
        help="the OME Image element's ID, with or without 'Image:' (e.g. 0 or Image:0; an "
        "unknown ID is refused with the list of the document's IDs)",
    )
    imgdata.add_argument(
        "-o", "--output", metavar="IMGDATA.json", help="output file (default: standard output)"
    )
    imgdata.add_argument(
        "--style",
        choices=("2018", "omero"),
        default="2018",
        help="2018 (default): the original converter's values; omero: what "
        "a real OMERO.web answers (see the README)",
    )
    _add_info(commands)
    for sub in (imgdata,):
        add_verbosity(sub)
    from ._cli_figure import add_figure_parser

    add_figure_parser(commands)
    return parser


def _add_info(commands: Any) -> None:
    """``info IMAGE``: levels, channels, pixel size and a request URL, metadata only."""
    info = commands.add_parser(
        "info",
        help="show an image's levels, channels, pixel size and a request URL",
        description="Show what an image holds (format, levels, tiles, pixel type, z/t/c, "
        "channels with colours and windows, pixel size) and a request URL for the whole "
        "image, reading metadata only.",
    )
    info.add_argument(
        "image",
        nargs="?",
        metavar="IMAGE",
        help="OME-TIFF or OME-Zarr path or URL; with --omero, the OMERO image id",
    )
    info.add_argument("--json", action="store_true", help="print JSON, for scripts")
    info.add_argument("--omero", metavar="SERVER", help="OMERO.web base URL")
    info.add_argument(
        "--omero-mode",
        choices=("composite", "windowed"),
        default="composite",
        help=argparse.SUPPRESS,
    )
    info.add_argument("--insecure", action="store_true", help="do not verify TLS certificates")
    info.add_argument("--minerva", metavar="UUID", help="the Minerva image uuid")
    info.add_argument(
        "--minerva-mode", choices=("raw", "render-tile"), default="raw", help=argparse.SUPPRESS
    )
    add_storage_option(info)
    add_verbosity(info)
