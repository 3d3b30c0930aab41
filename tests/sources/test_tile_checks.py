"""Every decoded tile is checked: server tiles for size, colour mode and pixel type."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest
import tifffile

from minerva_dask.sources._tiles import GREY_TOLERANCE, decode_tile


@pytest.fixture(scope="module")
def tissue(shared_data) -> np.ndarray:
    """A real 8-bit grey tile (colon tissue, 512 x 512): noisy, as JPEG's worst case."""
    return tifffile.imread(shared_data / "ome-tiff/colon-2ch-jpeg-subifd.ome.tiff")[0, :512, :512]


def _jpeg(pixels: np.ndarray) -> bytes:
    return imagecodecs.jpeg8_encode(pixels, level=95)


def test_a_grey_rendering_sent_as_an_rgb_jpeg_is_accepted_as_grey(tissue) -> None:
    rgb = np.repeat(tissue[..., np.newaxis], 3, axis=2)  # what OMERO sends for m=g
    got = decode_tile(_jpeg(rgb), tissue.shape, kind="grey")
    assert got.shape == tissue.shape and got.dtype == np.uint8
    assert np.abs(got.astype(int) - tissue).mean() < 2
    grey = decode_tile(_jpeg(tissue), tissue.shape, kind="grey")  # one band: fine too
    assert grey.shape == tissue.shape


def test_a_colour_tile_where_grey_was_asked_is_refused(tissue) -> None:
    rgb = np.stack([tissue, tissue // 2, tissue], axis=2)
    with pytest.raises(ValueError, match=r"in colour .* expected a grey rendering"):
        decode_tile(_jpeg(rgb), tissue.shape, kind="grey")
    rgb = np.repeat(tissue[..., np.newaxis], 3, axis=2)
    rgb[5, 7, 1] += GREY_TOLERANCE + 1 if rgb[5, 7, 1] < 128 else -(GREY_TOLERANCE + 1)
    with pytest.raises(ValueError, match="in colour"):
        decode_tile(imagecodecs.png_encode(rgb), tissue.shape, kind="grey")


@pytest.mark.parametrize("codec", ["jpeg", "png"])
def test_a_grey_tile_where_a_colour_rendering_was_asked_is_refused(tissue, codec) -> None:
    body = _jpeg(tissue) if codec == "jpeg" else imagecodecs.png_encode(tissue)
    with pytest.raises(ValueError, match=r"grey \(one band\), expected an RGB rendering"):
        decode_tile(body, tissue.shape, kind="rgb")


def test_rgb_tiles_keep_three_bands_and_drop_alpha() -> None:
    rgba = np.zeros((8, 10, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 255
    got = decode_tile(imagecodecs.png_encode(rgba), (8, 10), kind="rgb")
    assert got.shape == (8, 10, 3) and (got[..., 0] == 200).all()
    with pytest.raises(ValueError, match="holds uint16 pixels, expected uint8"):
        decode_tile(imagecodecs.png_encode(rgba[..., :3].astype(np.uint16)), (8, 10))


def test_raw_tiles_are_one_band_of_the_images_type() -> None:
    raw = (np.arange(80, dtype=np.uint16) * 700).reshape(8, 10)
    got = decode_tile(imagecodecs.png_encode(raw), (8, 10), kind="raw", dtype=np.uint16)
    np.testing.assert_array_equal(got, raw)
    body = imagecodecs.png_encode((raw >> 8).astype(np.uint8))
    with pytest.raises(ValueError, match="holds uint8 pixels, expected uint16"):
        decode_tile(body, (8, 10), kind="raw", dtype=np.uint16)
    body = imagecodecs.png_encode(np.repeat(raw[..., np.newaxis], 3, axis=2))
    with pytest.raises(ValueError, match="3 bands, expected one band"):
        decode_tile(body, (8, 10), kind="raw", dtype=np.uint16)


def test_wrong_size_cut_and_foreign_bodies_are_refused(tissue) -> None:
    body = _jpeg(tissue)
    with pytest.raises(ValueError, match="tile is 512 x 512, expected 256 x 512"):
        decode_tile(body, (512, 256), kind="grey")
    with pytest.raises(ValueError, match="truncated"):
        decode_tile(body[: len(body) // 2], tissue.shape, kind="grey")
    with pytest.raises(ValueError, match="neither JPEG nor PNG"):
        decode_tile(b"<html>busy</html>", tissue.shape)
