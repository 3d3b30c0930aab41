"""Root conftest: applies to the tests and to the doctests in src/ alike."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Generate the demo image into a per-session folder, never the user's cache."""
    folder = tmp_path_factory.mktemp("cache")
    previous = os.environ.get("MINERVA_DASK_CACHE")
    os.environ["MINERVA_DASK_CACHE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("MINERVA_DASK_CACHE", None)
    else:
        os.environ["MINERVA_DASK_CACHE"] = previous
