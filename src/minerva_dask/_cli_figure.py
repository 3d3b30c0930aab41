"""``minerva-dask figure``: its options, and the run over :func:`minerva_dask.render_figure`."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from ._cli_types import add_storage_option, add_verbosity

__all__ = ["add_figure_parser", "run_figure"]

_HELP = """\
Render every panel of an OMERO.figure file (JSON, format versions 1-6) and the whole page
from tiles: no plane-size limit, each panel at its printed size times DPI / 72 pixels.

Images come from OMERO (--omero SERVER: the image ids of the file) or from files and
URLs mapped by id (--image ID=PATH_OR_URL, repeatable); --image wins for its id.
DIR receives one PNG per panel (NN-imagename.png, in the file's panel order), the page
(page.png or page.tif; page-N.* for several pages) and manifest.json (what was rendered
from where). It appears whole or not at all.

examples:
  minerva-dask figure fig.json --omero https://omero.example.org -o fig-out
  minerva-dask figure fig.json --image 548111=slide.ome.tif --dpi 600 -o fig-out
"""


def _image(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value:
        raise argparse.ArgumentTypeError(f"expected ID=PATH_OR_URL, got {text!r}")
    return key.strip(), value


def add_figure_parser(commands: Any) -> None:
    """Add the ``figure`` subcommand to ``commands`` (argparse subparsers)."""
    figure = commands.add_parser(
        "figure",
        help="render a whole OMERO.figure file: every panel and the page",
        description=_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    figure.add_argument("figure", metavar="FIGURE.json", help="OMERO.figure file")
    figure.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    figure.add_argument(
        "--image",
        "-i",
        action="append",
        type=_image,
        default=[],
        metavar="ID=PATH_OR_URL",
        help="the image of a figure image id: OME-TIFF or OME-Zarr, local or remote (repeatable)",
    )
    figure.add_argument(
        "--omero", metavar="SERVER", help="OMERO.web base URL for the figure's image ids"
    )
    figure.add_argument("--omero-mode", choices=("composite", "windowed"), default="composite")
    figure.add_argument("--jpeg-quality", type=float, metavar="Q")
    figure.add_argument("--insecure", action="store_true", help="do not verify TLS (OMERO)")
    figure.add_argument(
        "--dpi",
        type=float,
        help="dots per inch of every panel and the page (default: each panel's "
        "min_export_dpi, else 300; the page takes the largest)",
    )
    figure.add_argument(
        "--page-format",
        choices=("png", "tiff"),
        default="png",
        help="the page as page.png (default) or page.tif (deflate); panels are PNG",
    )
    figure.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        help="largest page or panel in pixels, refused before any read (default 2147483647)",
    )
    figure.add_argument("--preset", default="linear", choices=("linear", "omero", "minerva-2018"))
    figure.add_argument(
        "--background", default="black", metavar="COLOUR", help="black, omero or hex"
    )
    figure.add_argument("--overwrite", action="store_true", help="replace an existing DIR")
    figure.add_argument("--scheduler", metavar="ADDRESS", help="a running dask cluster")
    add_storage_option(figure)
    add_verbosity(figure)


def run_figure(args: argparse.Namespace) -> int:
    """Run ``figure`` from parsed arguments; the exit code."""
    from .errors import RequestError
    from .figure import render_figure

    started = time.perf_counter()
    images: dict[str, str] = {}
    for key, value in args.image:
        if key in images:
            raise RequestError(f"--image {key}= is given twice")
        images[key] = value
    options: dict[str, Any] = {"mode": args.omero_mode, "verify": not args.insecure}
    if args.jpeg_quality is not None:
        options["quality"] = args.jpeg_quality
    result = render_figure(
        args.figure,
        args.output,
        images=images,
        omero=args.omero,
        omero_options=options,
        storage_options=dict(args.storage_option) or None,
        dpi=args.dpi,
        page_format=args.page_format,
        preset=args.preset,
        background=args.background,
        overwrite=args.overwrite,
        scheduler=args.scheduler,
        max_pixels=args.max_pixels,
    )
    if not args.quiet:
        width, height = result.page_size
        print(
            f"Wrote {result.path}: {len(result.panels)} panels and the page ({width} x "
            f"{height} px at {result.dpi:g} dpi) in {time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return 0
