"""What each start-up micro-optimisation is worth on a CLI crop of the peers' overview case.

``./run bench startup [--pairs 20]``: for each optimisation, a copy of ``src/minerva_dask``
with that one optimisation undone (a text patch below) runs the overview crop (8192^2 x
8-channel pyramid, 3 channels, max_size 1024, PNG) as a fresh ``minerva-dask crop``
process, alternating with the unpatched tree: one pair per round, the order flipped
every round. The figures are the medians over the pairs of (undone / kept) wall time and
CPU time (user + system of the child), so a pair shares the machine's state on a noisy
VM (CPU time moves far less than wall time when other work shares the cores); the issue
keeps an optimisation only when undoing it costs at least 5%.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.peers import CASES, make_data, request_url

SRC = Path(__file__).resolve().parent.parent / "src" / "minerva_dask"

# name: (file, text, replacement): the optimisation undone. (The lazy __version__ and the
# _VersionAction of --version were measured here too, worth 3% and nothing: removed.)
UNDO = {
    "gc.freeze at exit": ("cli.py", "    gc.freeze()", "    pass"),
    "no tempfile import": (
        "writers/_atomic.py",
        "from .._paths import is_url, local_path\n",
        "import tempfile  # noqa: F401\n\nfrom .._paths import is_url, local_path\n",
    ),
    "dask config search": (
        "compute/_context.py",
        '    if "dask" in sys.modules or any(name.startswith("DASK_") for name in os.environ):',
        "    if True:",
    ),
    "OPENBLAS_NUM_THREADS=1": (
        "cli.py",
        '    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")\n',
        "",
    ),
}


def make_tree(root: Path, name: str | None) -> Path:
    """A copy of the package under ``root/<slug>``, with ``name`` undone (None: as is)."""
    tree = root / (name or "kept").replace(" ", "-").replace("/", "-").replace("=", "-")
    shutil.copytree(SRC, tree / "minerva_dask", ignore=shutil.ignore_patterns("__pycache__"))
    if name is not None:
        file, text, replacement = UNDO[name]
        path = tree / "minerva_dask" / file
        source = path.read_text()
        if text not in source:
            raise SystemExit(f"{name}: the optimisation is no longer in {file}")
        source = source.replace(text, replacement, 1)
        path.write_text(source)
    return tree


def crop_s(tree: Path, argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one crop in a fresh process."""
    code = "import sys; from minerva_dask.cli import run; sys.argv[0] = 'minerva-dask'; run()"
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("OPENBLAS_NUM_THREADS", None)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *argv], check=True, env=env)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--only", nargs="*", default=list(UNDO))
    args = parser.parse_args()
    files = make_data()
    key, channels, region, max_size = CASES["overview-3ch"]
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        out = root / "overview.png"
        argv = ["crop", request_url(channels, region, max_size), "--image", str(files[key])]
        argv += ["-o", str(out), "-q"]
        kept = make_tree(root, None)
        trees = {name: make_tree(root, name) for name in args.only}
        for tree in (kept, *trees.values()):
            crop_s(tree, argv)  # compile the bytecode, warm the file cache
        ratios: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
        times: dict[str, list[float]] = {name: [] for name in ["kept", *trees]}
        for round_ in range(args.pairs):
            for name, tree in trees.items():
                first_kept = round_ % 2 == 0
                a = crop_s(kept if first_kept else tree, argv)
                b = crop_s(tree if first_kept else kept, argv)
                kept_s, undone_s = (a, b) if first_kept else (b, a)
                ratios[name].append((undone_s[0] / kept_s[0], undone_s[1] / kept_s[1]))
                times["kept"].append(kept_s[0])
                times[name].append(undone_s[0])
    print(f"overview crop, {args.pairs} alternating pairs per optimisation")
    print(f"kept (all optimisations): median wall {statistics.median(times['kept']):.3f} s")
    for name, pairs in ratios.items():
        wall, cpu = ([p[i] for p in pairs] for i in (0, 1))
        print(
            f"{name:24s} undone: median wall {statistics.median(times[name]):.3f} s; "
            f"paired ratio undone/kept, wall {statistics.median(wall):.3f} "
            f"(quartiles {_quartiles(wall)}), CPU {statistics.median(cpu):.3f} "
            f"(quartiles {_quartiles(cpu)})"
        )


def _quartiles(values: list[float]) -> str:
    if len(values) < 2:
        return "-"
    low, _, high = statistics.quantiles(values, n=4)
    return f"{low:.3f}-{high:.3f}"


if __name__ == "__main__":
    main()
