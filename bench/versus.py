"""This tree's CLI against an earlier revision's, on the peers' cases, paired and alternating.

A regression check (issue 16: "no case slower than before by more than noise"): the
revision given (default: the one before this session's work, ``--base``) is checked out
into a temporary git worktree; both trees run the same CLI crop as fresh processes with
the same interpreter and environment (``PYTHONPATH`` picks the tree's ``src``), one after
the other in alternating order within each repeat, so a pair shares the machine's state.
The paired ratio is this tree's time over the base's in the same repeat; the median of
those ratios is printed with its spread (the ratios' interquartile range), and the
outputs of the two trees are compared byte for byte. PNG by default; ``--formats ome.tif
ome.zarr dzi`` times the exports (a new output each run).

Run: ./run bench versus [--base REV] [--repeats 11] [--cases ...] [--formats png ...]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers import CASES, make_data, request_url

ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; sys.argv[0] = 'minerva-dask'; from minerva_dask.cli import run; run()"


def _crop_seconds(src: Path, image: Path, url: str, out: Path) -> float:
    """Wall seconds of one fresh ``minerva-dask crop`` process run from ``src``, writing
    ``out`` anew (an earlier one removed first)."""
    _remove(out)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPATH"] = str(src)
    command = [sys.executable, "-c", CLI, "crop", url, "--image", str(image), "-o", str(out)]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _remove(out: Path) -> None:
    for path in (out, out.with_name(out.name.removesuffix(".dzi") + "_files")):
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _digest(out: Path) -> str:
    """The output, hashed: every file of a folder output by its path inside it; an
    OME-TIFF by the pixels of every level (its OME-XML has a new UUID each time)."""
    digest = hashlib.sha256()
    if out.suffix == ".tif":
        import tifffile

        with tifffile.TiffFile(out) as tif:
            for level in tif.series[0].levels:
                digest.update(level.asarray().tobytes())
        return digest.hexdigest()
    files = [("", out)] if out.is_file() else []
    for folder in (out, out.with_name(out.name.removesuffix(".dzi") + "_files")):
        if folder.is_dir():
            files += [(str(f.relative_to(folder)), f) for f in folder.rglob("*") if f.is_file()]
    for name, f in sorted(files):
        digest.update(name.encode() + f.read_bytes())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="9b73c4f", help="the revision compared against")
    parser.add_argument("--repeats", type=int, default=11)
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument(
        "--formats",
        nargs="+",
        default=["png"],
        choices=["png", "ome.tif", "ome.zarr", "dzi"],
        help="output formats (suffixes) compared, each case in each",
    )
    args = parser.parse_args()
    files = make_data()
    with tempfile.TemporaryDirectory(prefix="md-versus-") as tmp:
        base = Path(tmp) / "base"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(base), args.base],
            check=True,
        )
        try:
            trees = {"base": base / "src", "this": ROOT / "src"}
            print(f"base {args.base} against this tree; {args.repeats} repeats, paired")
            print(f"{'case':<27} {'base s':>8} {'this s':>8} {'ratio':>7} {'IQR':>13} same bytes")
            for case, suffix in [(c, f) for f in args.formats for c in args.cases]:
                key, channels, region, max_size = CASES[case]
                url = request_url(channels, region, max_size)
                times: dict[str, list[float]] = {"base": [], "this": []}
                for repeat in range(args.repeats + 1):  # the first: bytecode, caches
                    order = ("base", "this") if repeat % 2 else ("this", "base")
                    for name in order:
                        out = Path(tmp) / f"{name}.{suffix}"
                        seconds = _crop_seconds(trees[name], files[key], url, out)
                        if repeat:
                            times[name].append(seconds)
                ratios = [t / b for t, b in zip(times["this"], times["base"], strict=True)]
                q1, _, q3 = statistics.quantiles(ratios, n=4)
                outputs = [_digest(Path(tmp) / f"{name}.{suffix}") for name in ("base", "this")]
                same = outputs[0] == outputs[1]
                print(
                    f"{case + ' ' + suffix:<27} {statistics.median(times['base']):8.3f} "
                    f"{statistics.median(times['this']):8.3f} {statistics.median(ratios):7.3f} "
                    f"{q1:6.3f}-{q3:6.3f} {same}",
                    flush=True,
                )
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base)])


if __name__ == "__main__":
    main()
