"""Settings and credentials from the environment or a TOML config file, in one place.

Order: explicit arguments, then environment variables, then the config file
(``$MINERVA_DASK_CONFIG``, else ``<user config dir>/minerva-dask/config.toml``)::

    [omero]
    server = "https://omero.example.org"
    username = "alice"
    password = "..."

    [minerva]
    username = "alice@example.org"
    password = "..."

Values read here are secrets: they are never logged or put in messages.
"""

from __future__ import annotations

import os
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from .errors import MinervaDaskError

__all__ = ["config_path", "setting"]


def config_path() -> Path:
    """Where the config file is looked for."""
    override = os.environ.get("MINERVA_DASK_CONFIG")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_config_dir("minerva-dask")) / "config.toml"


@lru_cache(maxsize=4)
def _load(path: Path, mtime: float) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise MinervaDaskError(f"config file {path} is not valid TOML: {exc}") from None


def setting(section: str, key: str, env: str | None = None) -> str | None:
    """``env`` from the environment if set, else ``[section] key`` from the config file."""
    if env and os.environ.get(env):
        return os.environ[env]
    path = config_path()
    if not path.is_file():
        return None
    value = _load(path, path.stat().st_mtime).get(section, {}).get(key)
    return None if value is None else str(value)
