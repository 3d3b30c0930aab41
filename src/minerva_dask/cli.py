"""The ``minerva-dask`` command line: a thin layer over :func:`minerva_dask.crop`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any

from ._console import configure_logging, first_line, print_error
from .errors import MinervaDaskError, RequestError

__all__ = ["main", "run"]

_CROP_HELP = """\
Render a composite of chosen channels of a microscopy image to a picture file.

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
Quote the request: it contains characters the shell treats specially ($ and |).

With no REQUEST, the image's own channel settings are used for the whole image.
With neither REQUEST nor --image, the built-in demo image is rendered to out.png.

examples:
  minerva-dask crop
  minerva-dask crop '/0/0/0/?c=1|0:30000$0000FF&region=0,0,4096,4096' \
      --image slide.ome.tif -o fig.png
  minerva-dask crop --image s3://bucket/slide.ome.zarr --max-size 1024 -o overview.png
"""


def _storage_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    lowered = value.lower()
    parsed: object = {"true": True, "false": False}.get(lowered, value)
    return key, parsed


class _VersionAction(argparse.Action):
    """``--version``: the installed version, looked up only when asked (reading package
    metadata takes 10-30 ms of every start-up otherwise)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, help="show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from . import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="minerva-dask",
        description="Render composites of huge multiplexed microscopy images, tile by tile.",
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    crop = commands.add_parser(
        "crop",
        help="render a region to a PNG file",
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
        choices=("png", "ome-tiff", "ome-zarr"),
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
    crop.add_argument(
        "--storage-option",
        action="append",
        type=_storage_option,
        default=[],
        metavar="KEY=VALUE",
        help="fsspec option for remote images (repeatable); whole_file_max_bytes=N: fetch a "
        "TIFF whole from an HTTP server without Range support when at most N bytes (64 MiB)",
    )
    export = crop.add_argument_group("big exports (OME-TIFF, OME-Zarr)")
    export.add_argument(
        "--overwrite", action="store_true", help="replace an existing OME-TIFF / OME-Zarr output"
    )
    export.add_argument(
        "--resume",
        action="store_true",
        help="OME-Zarr: continue an interrupted export, skipping written chunks",
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
        metavar="UUID",
        help="the image id (the Image element's ID, with or without 'Image:')",
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
    for sub in (imgdata,):
        sub.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
        sub.add_argument("-v", "--verbose", action="count", default=0)
    return parser


def _run_imgdata(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from .errors import SourceNotFoundError
    from .imgdata import imgdata_from_ome_xml
    from .writers._atomic import atomic_write, check_not_input

    path = Path(args.xml)
    if not path.is_file():
        raise SourceNotFoundError(f"no such file: {path}")
    if args.output is not None:
        check_not_input(args.output, (args.xml,))  # before reading: never replace the input
    data = imgdata_from_ome_xml(path.read_bytes(), args.image_id, style=args.style)
    text = json.dumps(data, indent=2) + "\n"
    if args.output is None:
        sys.stdout.write(text)
        return 0
    with atomic_write(args.output, inputs=(args.xml,)) as fh:
        fh.write(text.encode())
    if not args.quiet:
        print(f"Wrote {args.output}", file=sys.stderr)
    return 0


def _open_source(args: argparse.Namespace, request: Any) -> Any:
    """The image: --image, else the OMERO server named by --omero or by a full URL."""
    from .sources import open_image, open_minerva, open_omero

    if args.image is not None:
        return open_image(args.image, storage_options=dict(args.storage_option) or None)
    if args.minerva is not None:
        return open_minerva(args.minerva, mode=args.minerva_mode)
    server = args.omero or (request.server if request is not None else None)
    if server is None:
        raise RequestError(
            "no image given: add --image PATH_OR_URL (OME-TIFF or OME-Zarr), or --omero "
            "SERVER with a request /{image_id}/{z}/{t}/?c=..."
        )
    if request is None or request.image_id is None or not request.image_id.isdigit():
        raise RequestError(
            "reading from OMERO needs the image id: give a request /{image_id}/{z}/{t}/?c=..."
        )
    options: dict[str, Any] = {}
    quality = args.jpeg_quality if args.jpeg_quality is not None else request.quality
    if quality is not None:  # the flag wins over the request's q; neither: the source's default
        options["quality"] = quality
    return open_omero(
        server, request.image_id, mode=args.omero_mode, verify=not args.insecure, **options
    )


def _run_crop(args: argparse.Namespace) -> int:
    from .api import crop
    from .request import default_request, parse_request
    from .sources._fs import OWN_OPTIONS

    if args.request is None and args.image is None and args.omero is None and not args.minerva:
        from ._demo import DEMO_REQUEST, demo_image_path

        if not args.quiet:
            print("No request or image given: rendering the built-in demo image.", file=sys.stderr)
        args.request, args.image = DEMO_REQUEST, str(demo_image_path())
    request = parse_request(args.request) if args.request is not None else None
    source = _open_source(args, request)
    if request is None:
        request = default_request(source.info)
    if args.max_size is not None:
        from dataclasses import replace

        request = replace(request, max_size=args.max_size)
    background = args.background or ("omero" if args.omero_compatible else "black")
    started = time.perf_counter()
    output = args.output
    if os.path.isdir(output) and not output.rstrip("/").lower().endswith(".zarr"):
        output = os.path.join(output, "out.png")  # -o FOLDER, as the 2018 scripts took it
    overwrite = False if args.no_overwrite else (True if args.overwrite else None)
    result = crop(
        request,
        output,
        image=source,
        preset=args.preset,
        gamma=args.gamma,
        background=background,
        level_rule="omero-figure" if args.omero_compatible else "general",
        max_pixels=args.max_pixels,
        scheduler=args.scheduler,
        local_cluster=args.local_cluster,
        memory_limit=args.memory_limit,
        progress=not args.quiet,
        format=args.format,
        overwrite=overwrite,
        resume=args.resume,
        compression=args.compression,
        zarr_version=args.zarr_version,
        output_storage_options={k: v for k, v in args.storage_option if k not in OWN_OPTIONS}
        or None,  # the reading options of ours stay with the input
        png_level=args.png_level,
    )
    if not args.quiet:
        height, width = result.shape
        print(
            f"Wrote {result.path} ({width} x {height} px, {_human(result.size_bytes)}) in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return 0


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread as Ctrl-C is, so that every cleanup
    of the writers (``finally``, ``except BaseException``) runs; ``signum`` says which."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, frame: Any) -> None:
    import signal

    for other in (signal.SIGTERM, signal.SIGHUP):  # once: a second one cannot cut cleanup
        signal.signal(other, signal.SIG_IGN)
    raise Stopped(signum)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Every failure is one line on stderr and exit code 2: errors of ours say what was
    wrong in the user's terms; anything unexpected is named as a bug, its traceback shown
    only with -vv. Nothing printed carries a secret. SIGTERM and SIGHUP stop it as Ctrl-C
    does, temporary files removed: exit status 128 + the signal (143, 129; Ctrl-C 130).
    The previous handlers are restored on return.
    """
    import signal
    import threading

    parser = _build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    restore = configure_logging(getattr(args, "quiet", False), getattr(args, "verbose", 0))
    previous = {}
    if threading.current_thread() is threading.main_thread():  # handlers live there only
        previous = {sig: signal.signal(sig, _on_signal) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        with warnings.catch_warnings():
            if getattr(args, "insecure", False):  # asked for: one line of ours, not one a request
                warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            return _run_imgdata(args) if args.command == "imgdata" else _run_crop(args)
    except MinervaDaskError as exc:
        print_error(str(exc))
        return 2
    except Stopped as exc:
        print(f"minerva-dask: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("minerva-dask: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, or a failure we did not foresee: still one line
        logging.getLogger("minerva_dask.cli").debug("traceback:", exc_info=True)
        print_error(
            f"unexpected {type(exc).__name__}: {first_line(exc)} (this is a bug in "
            "minerva-dask or a case it does not handle yet; -vv shows the traceback)"
        )
        return 2
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        restore()


def run() -> None:
    """The ``minerva-dask`` console script: :func:`main`, then exit with its code.

    numpy's OpenBLAS is held to one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise
    (set before numpy is imported, which is when OpenBLAS reads it), as dask's nanny does
    for its workers: the command does no linear algebra, and the thread OpenBLAS starts
    with numpy spins on a core while a crop reads and encodes on all of them, then is
    joined at exit (3-4% of a 0.2 s overview on 2 cores).

    Before exiting, every object is moved out of the cyclic garbage collector's reach
    (``gc.freeze``): the interpreter's last collections would otherwise walk every object
    of numpy, tifffile and ours, 10-15 ms of a 0.2 s crop, for memory the operating
    system reclaims anyway. Outputs are closed by then; atexit handlers still run and
    buffered output is still flushed.
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = main()
    import gc

    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
