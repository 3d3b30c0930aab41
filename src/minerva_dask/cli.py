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

from ._cli_parser import build_parser
from ._console import configure_logging, first_line, print_error
from ._stop import Stopped, stop_on_signals
from .errors import MinervaDaskError, RequestError

__all__ = ["main", "run"]


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


def _image_arguments(args: argparse.Namespace, request: Any) -> dict[str, Any]:
    """--image, --omero or --minerva (one of them) and their options, as ``crop`` takes
    them; refused here in the flags' own words when none or several are given."""
    given = [f"--{n}" for n in ("image", "omero", "minerva") if getattr(args, n) is not None]
    if len(given) > 1:
        raise RequestError(f"give one image, not both {' and '.join(given)}")
    if not given and (request is None or request.server is None):
        raise RequestError(
            "no image given: add --image PATH_OR_URL (OME-TIFF or OME-Zarr), or --omero "
            "SERVER with a request /{image_id}/{z}/{t}/?c=..."
        )
    options: dict[str, Any] = {}
    if args.minerva is not None:
        options["mode"] = args.minerva_mode
    elif args.image is None:  # OMERO: --omero, or the server of a full URL
        options.update(mode=args.omero_mode, verify=not args.insecure)
        if args.jpeg_quality is not None:  # the flag wins over the request's q
            options["quality"] = args.jpeg_quality
    return {
        "image": args.image,
        "omero": args.omero,
        "minerva": args.minerva,
        "storage_options": (dict(args.storage_option) or None) if args.image else None,
        "source_options": options,
    }


def _run_crop(args: argparse.Namespace, started: float) -> int:
    """``crop``; ``started``: when the command began (the final line's time covers it all)."""
    from .api import crop
    from .auto_contrast import parse_percentiles
    from .request_url import parse_request
    from .sources._fs import OWN_OPTIONS

    if args.request is None and args.image is None and args.omero is None and not args.minerva:
        from ._demo import DEMO_REQUEST, demo_image_path

        def announce(folder: Any) -> None:
            print(f"Generating the demo image (once, into {folder})...", file=sys.stderr)

        if not args.quiet:
            print("No request or image given: rendering the built-in demo image.", file=sys.stderr)
        path = demo_image_path(announce=None if args.quiet else announce)
        args.request = None if args.group else DEMO_REQUEST
        args.image = str(path)
    if args.group:
        return _run_groups(args, started)
    if args.request is None and args.auto_windows and "?" in args.auto_windows:
        args.request, args.auto_windows = args.auto_windows, "0.1,99.9"  # --auto-windows URL
    request = parse_request(args.request) if args.request is not None else None
    image = _image_arguments(args, request)
    grey = args.omero_compatible and not args.raw  # a raw export is 0 outside the image
    background = args.background or ("omero" if grey else "black")
    output = args.output
    if os.path.isdir(output) and not output.rstrip("/").lower().endswith(".zarr"):
        output = os.path.join(output, "out.png")  # -o FOLDER, as the 2018 scripts took it
    overwrite = False if args.no_overwrite else (True if args.overwrite else None)
    result = crop(
        request,
        output,
        **image,
        max_size=args.max_size,
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
        shard=args.shard,
        output_storage_options={k: v for k, v in args.storage_option if k not in OWN_OPTIONS}
        or None,  # the reading options of ours stay with the input
        png_level=args.png_level,
        auto_windows=None if args.auto_windows is None else parse_percentiles(args.auto_windows),
        tile_size=args.tile_size,
        overlap=args.overlap,
        tile_format=args.tile_format,
        tile_quality=args.tile_quality,
        raw=args.raw,
    )
    if args.auto_windows is not None:  # to reuse, or paste into OMERO.figure
        print(result.request.to_url(), flush=True)
    if not args.quiet:
        height, width = result.shape
        remote = "://" in str(result.path) and not str(result.path).startswith("file://")
        size = "" if remote and not result.size_bytes else f", {_human(result.size_bytes)}"
        print(
            f"Wrote {result.path} ({width} x {height} px{size}) in "
            f"{time.perf_counter() - started:.1f} s",
            file=sys.stderr,
        )
    return 0


def _run_groups(args: argparse.Namespace, started: float) -> int:
    """``crop --group NAME=REQUEST ...``: one Deep Zoom pyramid per group and a viewer."""
    from .api import open_for_request
    from .groups import check_one_image, crop_groups
    from .request_url import parse_request

    if args.request is not None:
        raise RequestError("give either REQUEST or --group NAME=REQUEST options, not both")
    if args.output == "out.png":  # the default: a file name, where groups need a folder
        raise RequestError("--group writes a folder: name it with -o FOLDER")
    if args.raw or args.format not in (None, "dzi"):
        what = "--raw" if args.raw else f"--format {args.format}"
        raise RequestError(
            f"--group writes rendered Deep Zoom pyramids; {what} cannot apply to it: "
            "drop one of them"
        )
    requests = [parse_request(text) for _, text in args.group]
    names = [name for name, _ in args.group]
    groups: Any = dict(zip(names, requests, strict=True)) if all(names) else requests
    if any(names) and not all(names):
        raise RequestError("name every --group NAME=REQUEST, or none (named after channels)")
    if all(names) and len(groups) != len(args.group):
        raise RequestError("two --group options have the same name")
    check_one_image(requests)  # before a login to the first one's server
    image = _image_arguments(args, requests[0])
    options = image.pop("source_options")
    source = open_for_request(requests[0], **image, **options)
    if args.auto_windows is not None:
        from .auto_contrast import parse_percentiles, with_auto_windows

        percentiles = parse_percentiles(args.auto_windows)
        requests = [with_auto_windows(source, r, percentiles) for r in requests]
        for request in requests:
            print(request.to_url(), flush=True)  # one line per group, in order
        groups = dict(zip(names, requests, strict=True)) if all(names) else requests
    background = args.background or ("omero" if args.omero_compatible else "black")
    result = crop_groups(
        groups,
        args.output,
        image=source,
        title=args.title,
        preset=args.preset,
        gamma=args.gamma,
        background=background,
        max_size=args.max_size,
        level_rule="omero-figure" if args.omero_compatible else "general",
        **({"max_pixels": args.max_pixels} if args.max_pixels is not None else {}),
        scheduler=args.scheduler,
        local_cluster=args.local_cluster,
        memory_limit=args.memory_limit,
        progress=not args.quiet,
        overwrite=args.overwrite,
        resume=args.resume,
        tile_size=args.tile_size,
        overlap=args.overlap,
        tile_format=args.tile_format,
        tile_quality=args.tile_quality,
    )
    if not args.quiet:
        print(
            f"Wrote {result.path}/index.html ({len(groups)} groups, {_human(result.size_bytes)}) "
            f"in {time.perf_counter() - started:.1f} s",
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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    Every failure is one line on stderr and exit code 2: errors of ours say what was
    wrong in the user's terms; anything unexpected is named as a bug, its traceback shown
    only with -vv. Nothing printed carries a secret. SIGTERM and SIGHUP stop it as Ctrl-C
    does, temporary files removed: exit status 128 + the signal (143, 129; Ctrl-C 130),
    even where the signal lands in code whose exceptions Python drops (see :mod:`._stop`).
    The previous handlers are restored on return.
    """
    import signal

    started = time.perf_counter()
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    restore = configure_logging(getattr(args, "quiet", False), getattr(args, "verbose", 0))
    try:
        with stop_on_signals(), warnings.catch_warnings():
            if getattr(args, "insecure", False):  # asked for: one line of ours, not one a request
                warnings.filterwarnings("ignore", message="Unverified HTTPS request")
            if args.command == "imgdata":
                return _run_imgdata(args)
            if args.command == "figure":
                from ._cli_figure import run_figure

                return run_figure(args)
            if args.command == "info":
                from ._info import run_info

                return run_info(args)
            return _run_crop(args, started)
    except MinervaDaskError as exc:
        print_error(str(exc))
        return 2
    except Stopped as exc:
        _quiet_abandoned_work()
        print(f"minerva-dask: stopped by {signal.Signals(exc.signum).name}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        _quiet_abandoned_work()
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
        restore()


def _quiet_abandoned_work() -> None:
    """After a stop, the reads and writes left in flight (zarr's and fsspec's coroutines)
    are never awaited; Python would say so at exit, in lines after our last one."""
    warnings.filterwarnings("ignore", message="coroutine .* was never awaited")
    warnings.filterwarnings("ignore", message="Enable tracemalloc")


def run() -> None:
    """The ``minerva-dask`` console script: :func:`main`, then exit with its code.

    numpy's OpenBLAS is held to one thread unless ``OPENBLAS_NUM_THREADS`` says otherwise
    (set before numpy is imported, which is when OpenBLAS reads it), as dask's nanny does
    for its workers: the command does no linear algebra, and the thread OpenBLAS starts
    with numpy spins on a core while a crop reads and encodes on all of them, then is
    joined at exit (7-9% of a CLI overview crop on 2 cores, bench/RESULTS.md).

    Before exiting, every object is moved out of the cyclic garbage collector's reach
    (``gc.freeze``): the interpreter's last collections would otherwise walk every object
    of numpy, tifffile and ours (17-18% of a CLI overview crop on a busy 2-core machine,
    bench/RESULTS.md), for memory the operating system reclaims anyway. Outputs are
    closed by then; atexit handlers still run and buffered output is still flushed.
    """
    # kept: undoing it costs 7-9% of a CLI overview crop (bench/RESULTS.md, start-up)
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    code = main()
    import gc

    gc.freeze()  # kept: undoing it costs 17-18% of a CLI overview crop (bench/RESULTS.md)
    sys.exit(code)


if __name__ == "__main__":
    run()
