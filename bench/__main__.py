"""``python -m bench NAME``: run one benchmark module of this folder (``graph_build``...)."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    names = sorted(
        m.name
        for m in pkgutil.iter_modules([str(Path(__file__).parent)])
        if m.name not in ("synthetic", "__main__")
    )
    if len(sys.argv) < 2 or sys.argv[1] not in names:
        print(f"usage: ./run bench NAME [ARGS]   NAME one of: {', '.join(names)}")
        return 2
    module = importlib.import_module(f"bench.{sys.argv[1]}")
    sys.argv = sys.argv[1:]
    module.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())
