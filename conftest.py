"""Root conftest: applies to the tests and to the doctests in src/ alike."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache() -> Iterator[Path]:
    """The demo image's cache for the tests, never the user's: ``.test-cache/`` in the
    checkout (ignored by git), in a folder named after the generator's source, so a change
    to ``_demo.py`` makes a new demo and an unchanged one is reused between runs (it takes
    5-15 s to make on 2 cores). The demo is written atomically, so runs side by side
    never see half of one."""
    generator = Path(__file__).parent / "src" / "minerva_dask" / "_demo.py"
    digest = hashlib.sha256(generator.read_bytes()).hexdigest()[:16]
    folder = Path(__file__).parent / ".test-cache" / f"demo-{digest}"
    previous = os.environ.get("MINERVA_DASK_CACHE")
    os.environ["MINERVA_DASK_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("MINERVA_DASK_CACHE", None)
    else:
        os.environ["MINERVA_DASK_CACHE"] = previous
