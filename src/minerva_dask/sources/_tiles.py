"""Decode tiles that servers send (JPEG, PNG), refusing cut or wrong-sized ones.

A truncated JPEG decodes without complaint (libjpeg fills the rest with grey), so bodies
are checked for their end-of-image marker; a PNG that does not decode, or a tile of the
wrong size, is a ``ValueError`` too, which the retry loop treats as transient.
"""

from __future__ import annotations

import numpy as np

__all__ = ["decode_tile"]

JPEG_START, JPEG_END, PNG_START = b"\xff\xd8", b"\xff\xd9", b"\x89PNG\r\n\x1a\n"


def decode_tile(body: bytes, shape: tuple[int, int], *, grey: bool = False) -> np.ndarray:
    """Pixels of a JPEG or PNG tile: ``(y, x, 3)``, or ``(y, x)`` (first band) if ``grey``.

    ``shape`` is the expected ``(height, width)``. 16-bit PNGs keep their 16 bits.
    """
    import imagecodecs

    if body[:2] == JPEG_START:
        if not body.rstrip(b"\x00").endswith(JPEG_END):
            raise ValueError(f"JPEG of {len(body)} bytes is truncated (no end-of-image marker)")
        pixels = imagecodecs.jpeg8_decode(body)
    elif body[:8] == PNG_START:
        try:
            pixels = imagecodecs.png_decode(body)
        except Exception as exc:
            raise ValueError(f"PNG does not decode: {exc}") from None
    else:
        raise ValueError(f"neither JPEG nor PNG ({len(body)} bytes)")
    if pixels.shape[:2] != shape:
        raise ValueError(
            f"tile is {pixels.shape[1]} x {pixels.shape[0]}, expected {shape[1]} x {shape[0]}"
        )
    if grey:
        return pixels if pixels.ndim == 2 else pixels[..., 0]
    if pixels.ndim == 2:
        return np.repeat(pixels[..., np.newaxis], 3, axis=2)
    return pixels[..., :3]
