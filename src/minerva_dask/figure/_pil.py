"""Pillow, imported when a figure is drawn, or one line saying which extra installs it."""

from __future__ import annotations

from types import ModuleType

from .._optional import import_optional

__all__ = ["pillow"]


def pillow() -> ModuleType:
    """Pillow's ``PIL`` package with ``Image``, ``ImageDraw`` and ``ImageFont`` loaded."""
    pil = import_optional("PIL", "figure", "Rendering OMERO.figure files")
    import PIL.Image
    import PIL.ImageDraw
    import PIL.ImageFont  # noqa: F401  (loaded for pil.ImageFont)

    return pil
