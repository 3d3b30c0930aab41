"""minerva-dask: render composites of huge multiplexed microscopy pyramids, lazily, with dask.

>>> import minerva_dask as md
>>> src = md.open_image(md.demo_image_path())
>>> req = md.parse_request("/0/0/0/?c=1|300:20000$0000FF,3|500:12000$FF0000"
...                         "&region=0,0,2048,2048&max_size=512")
>>> rgb = md.render(src, req)           # lazy: nothing read yet
>>> rgb.shape, rgb.level
((512, 512, 3), 2)

Heavy modules (dask, zarr, tifffile) load on first use of the names that need them.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _metadata_version
from typing import TYPE_CHECKING, Any

from .errors import (
    AuthError,
    MinervaDaskError,
    MissingDependencyError,
    OutputError,
    RemoteError,
    RequestError,
    SourceError,
    SourceNotFoundError,
    TileReadError,
)
from .geometry import Rect
from .request import ChannelSetting, RenderRequest
from .request_url import parse_request

try:
    __version__ = _metadata_version("minerva-dask")
except PackageNotFoundError:  # running from a source tree
    __version__ = "0+unknown"

__all__ = [
    "AuthError",
    "ChannelSetting",
    "MinervaDaskError",
    "MissingDependencyError",
    "OutputError",
    "Rect",
    "RemoteError",
    "RenderRequest",
    "Rendering",
    "RequestError",
    "SourceError",
    "SourceNotFoundError",
    "TileReadError",
    "__version__",
    "auto_windows",
    "channel_arrays",
    "crop",
    "crop_groups",
    "default_request",
    "demo_image_path",
    "imgdata_from_ome_xml",
    "open_image",
    "open_minerva",
    "open_omero",
    "open_source",
    "parse_request",
    "raw_region",
    "read_figure",
    "render",
    "render_figure",
    "request_with_auto_windows",
    "to_dzi",
    "to_dzi_groups",
    "to_ome_tiff",
    "to_ome_zarr",
    "to_png",
]

_LAZY = {
    "open_image": "minerva_dask.sources",
    "open_omero": "minerva_dask.sources",
    "open_minerva": "minerva_dask.sources",
    "open_source": "minerva_dask.sources",
    "imgdata_from_ome_xml": "minerva_dask.imgdata",
    "render": "minerva_dask.graph",
    "raw_region": "minerva_dask.raw",
    "Rendering": "minerva_dask.graph",
    "channel_arrays": "minerva_dask.graph",
    "to_png": "minerva_dask.exports",
    "to_ome_tiff": "minerva_dask.exports",
    "to_ome_zarr": "minerva_dask.exports",
    "crop": "minerva_dask.api",
    "render_figure": "minerva_dask.figure",
    "read_figure": "minerva_dask.figure",
    "crop_groups": "minerva_dask.groups",
    "to_dzi": "minerva_dask.exports",
    "to_dzi_groups": "minerva_dask.exports",
    "demo_image_path": "minerva_dask._demo",
    "auto_windows": "minerva_dask.explore",
    "request_with_auto_windows": "minerva_dask.explore",
    "default_request": "minerva_dask.request_url",
}

if TYPE_CHECKING:
    from ._demo import demo_image_path
    from .api import crop
    from .explore import auto_windows, request_with_auto_windows
    from .exports import to_dzi, to_dzi_groups, to_ome_tiff, to_ome_zarr, to_png
    from .figure import read_figure, render_figure
    from .graph import Rendering, channel_arrays, render
    from .groups import crop_groups
    from .imgdata import imgdata_from_ome_xml
    from .raw import raw_region
    from .request_url import default_request
    from .sources import open_image, open_minerva, open_omero, open_source


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'minerva_dask' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
