"""Image sources behind one small protocol, chosen by URL scheme, suffix or content.

The registry maps a format name to ``"module:Class"``; a source module (and its
third-party library) is imported only when an image of that format is opened.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ..errors import MissingDependencyError, RequestError, SourceError
from ._fs import exists_or_raise, fs_storage_options, is_url, local_path, redact_url
from .base import ChannelInfo, ImageInfo, LevelInfo, Source, read_level

__all__ = [
    "FORMATS",
    "ChannelInfo",
    "ImageInfo",
    "LevelInfo",
    "Source",
    "guess_format",
    "open_image",
    "open_minerva",
    "open_omero",
    "open_source",
    "read_level",
]

_REGISTRY = {
    "ome-tiff": ("minerva_dask.sources.ome_tiff:OmeTiffSource", None),
    "ome-zarr": ("minerva_dask.sources.ome_zarr:OmeZarrSource", None),
}
FORMATS = MappingProxyType(_REGISTRY)
_TIFF_SUFFIXES = (".ome.tif", ".ome.tiff", ".tif", ".tiff", ".btf", ".svs", ".qptiff", ".ndpi")
_ZARR_SUFFIXES = (".zarr", ".ome.zarr")
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def guess_format(ref: str, storage_options: dict[str, Any] | None = None) -> str:
    """The registry name of the format at ``ref``: by suffix, else by looking inside."""
    name = ref.rstrip("/").lower().split("?", 1)[0]
    if name.endswith(_TIFF_SUFFIXES):
        return "ome-tiff"
    if name.endswith(_ZARR_SUFFIXES):
        return "ome-zarr"
    exists_or_raise(ref, storage_options)
    if not is_url(ref):
        path = local_path(ref)
        if os.path.isdir(path):
            markers = ("zarr.json", ".zattrs", ".zgroup")
            if any(os.path.exists(os.path.join(path, m)) for m in markers):
                return "ome-zarr"
            raise SourceError(f"{path} is a directory but not a zarr group")
        with open(path, "rb") as fh:
            head = fh.read(4)
    else:
        import fsspec

        try:
            with fsspec.open(ref, "rb", **fs_storage_options(ref, storage_options)) as fh:
                head = fh.read(4)
        except (IsADirectoryError, ValueError):  # s3fs: "Attempt to open non key-like path"
            raise SourceError(
                f"{redact_url(ref)} is a folder, not an image file: name the OME-TIFF, or "
                "the OME-Zarr (.zarr)"
            ) from None
    if head in _TIFF_MAGIC:
        return "ome-tiff"
    raise SourceError(
        f"cannot tell the image format of {redact_url(ref)}: expected an OME-TIFF (.ome.tif) "
        "or OME-Zarr (.zarr); name the file so (.ome.tif, .zarr), or in Python pass "
        "open_image(..., format='ome-tiff' or 'ome-zarr')"
    )


def open_image(
    ref: str | os.PathLike[str],
    *,
    format: str | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> Source:
    """Open an image as a :class:`Source`: an OME-TIFF or OME-Zarr path or fsspec URL.

    Parameters
    ----------
    ref
        Local path or URL (``s3://bucket/slide.ome.tif``, ``https://host/img.ome.zarr``).
    format
        ``"ome-tiff"`` or ``"ome-zarr"``; guessed from the name or content when omitted.
    storage_options
        fsspec options for remote URLs (e.g. ``{"anon": True}`` or an S3 endpoint).
    **options
        Passed to the source class (``series=`` ...).

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> src.info.size_c, src.info.levels[0].width
    (4, 4096)
    """
    text = os.fspath(ref)
    chosen = format or guess_format(text, storage_options)
    if chosen not in _REGISTRY:
        raise SourceError(f"unknown format {chosen!r}; known: {', '.join(sorted(_REGISTRY))}")
    target, extra = _REGISTRY[chosen]
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise MissingDependencyError(
            f"opening {chosen} needs a missing package ({exc.name}): "
            f"pip install 'minerva-dask[{extra or 'all'}]'"
        ) from exc
    cls = getattr(module, class_name)
    _check_options(cls, options, f"an {chosen} image")
    return cls(text, storage_options=storage_options, **options)


def open_source(
    image: str | os.PathLike[str] | Source | None = None,
    *,
    omero: str | None = None,
    image_id: int | str | None = None,
    minerva: str | None = None,
    storage_options: dict[str, Any] | None = None,
    **options: Any,
) -> Source:
    """Open any image as a :class:`Source`: the one function that picks the kind of source.

    Give exactly one of: ``image``, a path or fsspec URL of an OME-TIFF or OME-Zarr (see
    :func:`open_image`; ``storage_options`` are its fsspec options), or an open source,
    returned as it is; ``omero``, the base URL of an OMERO.web server, with ``image_id``
    (see :func:`open_omero`); ``minerva``, a Minerva image uuid (see
    :func:`open_minerva`). ``options`` go to the source chosen (``mode=``, ``verify=``,
    ``series=`` ...). Missing, conflicting or misapplied arguments raise
    :class:`~minerva_dask.RequestError` before anything is opened.

    >>> import minerva_dask as md
    >>> md.open_source(md.demo_image_path()).info.size_c
    4
    >>> md.open_source(md.demo_image_path(), omero="https://omero.example.org")
    Traceback (most recent call last):
    ...
    minerva_dask.errors.RequestError: give one image, not both image= and omero=
    """
    given = [
        f"{name}="
        for name, v in (("image", image), ("omero", omero), ("minerva", minerva))
        if v is not None
    ]
    if len(given) > 1:
        raise RequestError(f"give one image, not both {' and '.join(given)}")
    if image_id is not None and omero is None:
        raise RequestError("image_id= names an OMERO image: give omero=SERVER with it")
    if not given:
        raise RequestError(
            "no image given: image=PATH_OR_URL (OME-TIFF or OME-Zarr), omero=SERVER with "
            "image_id=ID, or minerva=UUID"
        )
    if storage_options is not None and not isinstance(storage_options, Mapping):
        raise RequestError(
            "storage_options is a dict of fsspec options, e.g. {'anon': True}, not a "
            f"{type(storage_options).__name__}"
        )
    if storage_options and image is None:
        raise RequestError(
            "storage_options= are fsspec options for a file or URL given as image=, not "
            "for an OMERO or Minerva server"
        )
    if omero is not None:
        if image_id is None or not str(image_id).strip().isdigit():
            raise RequestError(f"an OMERO image needs its numeric id: image_id=, not {image_id!r}")
        return open_omero(omero, image_id, **options)
    if minerva is not None:
        return open_minerva(minerva, **options)
    if isinstance(image, Source):
        if options or storage_options:
            raise RequestError("an open source takes no options: give them when opening it")
        return image
    if not isinstance(image, str | os.PathLike):
        raise RequestError(
            f"image= takes a path, a URL or an open source (info, read_region, close), "
            f"not a {type(image).__name__}"
        )
    return open_image(image, storage_options=storage_options, **options)


def _check_options(cls: Any, options: dict[str, Any], what: str) -> None:
    """Refuse an option ``cls`` does not take, in one line (not a TypeError's traceback)."""
    import inspect

    known = [p for p in inspect.signature(cls).parameters if p not in ("self",)]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise RequestError(
            f"{what} takes no option {', '.join(unknown)}; its options: "
            f"{', '.join(k for k in known if k not in ('server', 'image_id', 'image_uuid', 'ref'))}"
        )


def open_omero(server: str, image_id: int | str, **options: Any) -> Source:
    """Open image ``image_id`` on the OMERO.web server at ``server`` (base URL).

    Credentials come from ``options`` (``session_key``, ``username``/``password``,
    ``cookie``), else from ``OMERO_SESSION``, ``OMERO_USERNAME``/``OMERO_PASSWORD``,
    ``OME_COOKIE`` or the config file; none means anonymous (public servers). Other
    options: ``mode="composite"|"windowed"``, ``verify``, ``quality``, ``image_format``,
    ``max_retries``, ``initial_delay_s``, ``timeout_s``, ``concurrency`` (see
    :class:`minerva_dask.sources.omero.OmeroSource`).

    A running example needs a server: ``notebooks/02-omero.ipynb`` (executed by the test
    suite against the emulating server) shows this call end to end.
    """
    from .omero import OmeroSource

    _check_options(OmeroSource, options, "an OMERO image")
    return OmeroSource(server, image_id, **options)


def open_minerva(image_uuid: str, **options: Any) -> Source:
    """Open image ``image_uuid`` in the Minerva cloud (Cognito sign-in, tiles from S3).

    Settings (``api_url``, ``user_pool_id``, ``client_id``, ``region``, ``bucket``,
    ``username``, ``password``...) come from ``options``, the ``MINERVA_*`` environment
    variables or the config file; ``mode="raw"`` (16-bit tiles, default) or
    ``"render-tile"`` (the API's lossy rendering). See
    :class:`minerva_dask.sources.minerva.MinervaSource`.

    A running example needs Cognito, S3 and the API: ``notebooks/04-minerva.ipynb``
    (executed by the test suite on moto and the emulating API) shows it end to end.
    """
    from .._optional import import_optional

    import_optional("pycognito", "minerva", "Signing in to Minerva")
    import_optional("s3fs", "minerva", "Reading Minerva tiles from S3")
    from .minerva import MinervaSource

    _check_options(MinervaSource, options, "a Minerva image")
    return MinervaSource(image_uuid, **options)
