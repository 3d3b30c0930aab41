"""Decode tiles that servers send (JPEG, PNG), refusing cut, wrong-sized or wrong-kind ones.

A truncated JPEG decodes without complaint (libjpeg fills the rest with grey), so bodies
are checked for their end-of-image marker; a PNG that does not decode, a tile of the
wrong size, or one of the wrong colour mode or pixel type is a ``ValueError`` too, which
the retry loop treats as a bad body (transient, then an error naming the tile).

What each kind of tile must hold (``kind=``):

``"rgb"``
    A rendered colour tile (OMERO composite, Minerva ``render-tile``): 8-bit with three
    bands (a fourth, alpha, is dropped). A grey (one-band) image is refused: a server that
    renders colour never sends one, so it is a wrong tile, not a grey composite.
``"grey"``
    A rendered grey tile (OMERO ``m=g``, one channel windowed by the server): 8-bit, one
    band, or three bands that agree. OMERO encodes even its grey renderings as RGB JPEGs;
    JPEG keeps a grey image's colour planes exactly neutral, so the bands of a real grey
    rendering agree to within :data:`GREY_TOLERANCE` (rounding in the colour conversion).
    Bands that differ by more are a colour tile where a grey one was asked for: refused.
``"raw"``
    Raw pixels (Minerva's 16-bit PNG tiles): one band of exactly ``dtype``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["GREY_TOLERANCE", "TILE_KINDS", "decode_tile"]

JPEG_START, JPEG_END, PNG_START = b"\xff\xd8", b"\xff\xd9", b"\x89PNG\r\n\x1a\n"
TILE_KINDS = ("rgb", "grey", "raw")
GREY_TOLERANCE = 3  # 8-bit levels the bands of a grey JPEG tile may differ by


def decode_tile(
    body: bytes, shape: tuple[int, int], *, kind: str = "rgb", dtype: object = np.uint8
) -> np.ndarray:
    """Pixels of a JPEG or PNG tile: ``(y, x, 3)`` for ``kind="rgb"``, else ``(y, x)``.

    ``shape`` is the expected ``(height, width)``; ``dtype`` the pixel type a ``"raw"``
    tile must have (rendered tiles are always 8-bit). Raises ``ValueError`` saying what
    is wrong with the tile.

    >>> import imagecodecs
    >>> grey = np.full((4, 6), 7, np.uint8)
    >>> decode_tile(imagecodecs.png_encode(grey), (4, 6), kind="grey").shape
    (4, 6)
    >>> decode_tile(imagecodecs.png_encode(grey), (4, 6), kind="rgb")
    Traceback (most recent call last):
    ...
    ValueError: tile is grey (one band), expected an RGB rendering
    """
    import imagecodecs

    if kind not in TILE_KINDS:
        raise ValueError(f"unknown tile kind {kind!r}")
    if body[:2] == JPEG_START:
        if not body.rstrip(b"\x00").endswith(JPEG_END):
            raise ValueError(f"JPEG of {len(body)} bytes is truncated (no end-of-image marker)")
        try:
            pixels = imagecodecs.jpeg8_decode(body)
        except Exception as exc:
            raise ValueError(f"JPEG does not decode: {exc}") from None
    elif body[:8] == PNG_START:
        try:
            pixels = imagecodecs.png_decode(body)
        except Exception as exc:
            raise ValueError(f"PNG does not decode: {exc}") from None
    else:
        raise ValueError(f"neither JPEG nor PNG ({len(body)} bytes)")
    if pixels.shape[:2] != tuple(shape):
        raise ValueError(
            f"tile is {pixels.shape[1]} x {pixels.shape[0]}, expected {shape[1]} x {shape[0]}"
        )
    bands = 1 if pixels.ndim == 2 else pixels.shape[2]
    want = np.dtype(dtype) if kind == "raw" else np.dtype(np.uint8)
    if pixels.dtype != want:
        raise ValueError(f"tile holds {pixels.dtype} pixels, expected {want}")
    if kind == "raw":
        if bands != 1:
            raise ValueError(f"tile has {bands} bands, expected one band of raw pixels")
        return pixels.reshape(shape)
    if kind == "rgb":
        if bands == 1:
            raise ValueError("tile is grey (one band), expected an RGB rendering")
        if bands not in (3, 4):
            raise ValueError(f"tile has {bands} bands, expected an RGB rendering")
        return pixels[..., :3]
    if bands == 1:
        return pixels.reshape(shape)
    if bands not in (3, 4):
        raise ValueError(f"tile has {bands} bands, expected a grey rendering")
    rgb = pixels[..., :3].astype(np.int16)
    spread = int((rgb.max(axis=2) - rgb.min(axis=2)).max())
    if spread > GREY_TOLERANCE:
        raise ValueError(
            f"tile is in colour (bands differ by up to {spread}), expected a grey rendering"
        )
    return pixels[..., 0]
