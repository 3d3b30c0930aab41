"""The parallel band PNG writer: files that Pillow and libpng decode to exactly the input."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib

import imagecodecs
import numpy as np
import pytest
from PIL import Image

import minerva_dask as md
from minerva_dask.errors import OutputError
from minerva_dask.sources.base import SourceBase
from minerva_dask.writers import png
from minerva_dask.writers.png import PngWriter, encode_png


def _images(height: int, width: int, samples: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(height * 1000 + width + samples)
    shape = (height, width) if samples == 1 else (height, width, samples)
    y, x = np.mgrid[:height, :width]
    ramp = ((x * 3 + y * 5) % 256).astype(np.uint8)
    smooth = ramp if samples == 1 else np.repeat(ramp[..., None], samples, axis=2)
    return {"noise": rng.integers(0, 256, shape, np.uint8), "smooth": smooth}


def _decoders(data: bytes) -> dict[str, np.ndarray]:
    return {
        "pillow": np.asarray(Image.open(io.BytesIO(data))),
        "libpng": imagecodecs.png_decode(data),
        "zlib": _zlib_reference_decode(data),
    }


def _filtered_rows(data: bytes) -> tuple[int, int, int, np.ndarray]:
    """Width, height, samples and the inflated ``(height, 1 + row bytes)`` rows (filter type
    byte, residuals) of a PNG, its chunks' CRCs checked, all IDATs one zlib stream."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, payload = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + payload), f"bad CRC in {kind!r}"
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", payload)
        elif kind == b"IDAT":
            idat += payload
        pos += 12 + length
    assert kind == b"IEND" and header is not None
    width, height, _, colour_type, *_ = header
    samples = {0: 1, 4: 2, 2: 3, 6: 4}[colour_type]
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(height, 1 + width * samples)
    return width, height, samples, raw


def _zlib_reference_decode(data: bytes) -> np.ndarray:
    """Unfilter by hand from the spec (filters 0-4) after one zlib.decompress of all IDATs."""
    width, height, samples, raw = _filtered_rows(data)
    rows = np.zeros((height + 1, width * samples), np.int64)
    for y in range(height):
        kind_byte, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        up = rows[y]
        assert kind_byte in (0, 1, 2), f"row {y}: filter {kind_byte}"
        if kind_byte == 1:  # Sub: each byte adds the one a pixel to its left
            out = (line.reshape(width, samples).cumsum(axis=0) % 256).ravel()
        else:
            out = (line + (up if kind_byte == 2 else 0)) % 256
        rows[y + 1] = out
    pixels = rows[1:].astype(np.uint8).reshape(height, width, samples)
    return pixels[..., 0] if samples == 1 else pixels


@pytest.mark.parametrize(
    ("height", "width", "samples"),
    [
        (1, 1, 3),  # one pixel
        (1, 4097, 3),  # single row
        (3, 5, 1),  # grey, much smaller than a band
        (7, 9, 4),  # RGBA
        (5, 3, 2),  # grey + alpha
        (513, 301, 3),  # odd sizes, several bands
    ],
)
@pytest.mark.parametrize("bands", ["as the trial chooses", "all filtered", "all unfiltered"])
def test_png_decodes_to_the_input_with_pillow_libpng_and_zlib(
    height, width, samples, bands, monkeypatch
):
    monkeypatch.setattr(png, "BAND_BYTES", 4096)  # many bands even for small images
    if bands != "as the trial chooses":  # both paths at every size, whatever the trial says
        forced = bands == "all unfiltered"
        monkeypatch.setattr(png, "_unfiltered_deflates_smaller", lambda *args: forced)
    for kind, pixels in _images(height, width, samples).items():
        data = encode_png(pixels, threads=3)
        for decoder, decoded in _decoders(data).items():
            assert decoded.shape == pixels.shape, (kind, decoder)
            assert np.array_equal(decoded, pixels), (kind, decoder)


def test_band_boundaries_and_uneven_row_blocks_keep_the_up_filter_right(monkeypatch) -> None:
    monkeypatch.setattr(png, "BAND_BYTES", 3 * 17 * 4)  # 4 rows a band
    pixels = _images(61, 17, 3)["smooth"]
    buffer = io.BytesIO()
    writer = PngWriter(buffer, 17, 61, 3, threads=2)
    for start, stop in [(0, 1), (1, 6), (6, 7), (7, 40), (40, 61)]:
        writer.write(pixels[start:stop])
    writer.close()
    assert 2 in _filtered_rows(buffer.getvalue())[3][:, 0]  # Up is used, across bands too
    for decoded in _decoders(buffer.getvalue()).values():
        assert np.array_equal(decoded, pixels)


@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_every_level_round_trips(level) -> None:
    pixels = _images(40, 33, 3)["noise"]
    assert np.array_equal(imagecodecs.png_decode(encode_png(pixels, level=level)), pixels)


def _demo_render(demo_path, url: str) -> np.ndarray:
    return md.render(md.open_image(demo_path), md.parse_request(url)).compute()


def test_file_is_within_ten_percent_of_libpng_at_the_same_level(demo_path) -> None:
    pixels = _demo_render(
        demo_path, "/0/0/0/?c=1|600:24000$0000FF,2|400:9000$00FF00&region=0,0,1024,1024"
    )
    ours, libpng = len(encode_png(pixels, level=6)), len(imagecodecs.png_encode(pixels, level=6))
    assert ours <= 1.10 * libpng


def test_dark_sparse_composites_are_written_unfiltered_and_smaller(demo_path, monkeypatch):
    """Row filters turn a composite's runs of black into noise; the trial deflate sees it."""
    pixels = _demo_render(
        demo_path, "/0/0/0/?c=1|600:24000$0000FF,2|400:9000$00FF00&region=0,0,1024,1024"
    )
    data = encode_png(pixels)
    assert not _filtered_rows(data)[3][:, 0].any()  # every row: filter type 0, None
    for decoded in _decoders(data).values():
        assert np.array_equal(decoded, pixels)
    monkeypatch.setattr(png, "_unfiltered_deflates_smaller", lambda *args: False)
    assert len(data) < 0.97 * len(encode_png(pixels))


def test_smooth_images_keep_their_row_filters_and_level_0_stores_rows_unfiltered(monkeypatch):
    y, x = np.mgrid[:300, :200]
    grey = ((x * x + 3 * y * y) // 64 % 256).astype(np.uint8)  # smooth, not periodic
    pixels = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    data = encode_png(pixels)
    assert set(np.unique(_filtered_rows(data)[3][:, 0])) <= {1, 2}  # Sub or Up, never None
    assert not _filtered_rows(encode_png(pixels, level=0))[3][:, 0].any()
    monkeypatch.setattr(png, "_unfiltered_deflates_smaller", lambda *args: True)
    assert 1.3 * len(data) < len(encode_png(pixels))


def test_default_level_files_are_within_ten_percent_of_level_6(demo_path) -> None:
    """The default level (3) trades a few percent of size for speed, never more than 10%."""
    pixels = _demo_render(
        demo_path, "/0/0/0/?c=1|600:24000$0000FF,3|500:12000$FF0000&region=0,0,2048,2048"
    )
    default, level_6 = len(encode_png(pixels)), len(encode_png(pixels, level=6))
    assert png.PNG_LEVEL != 6
    assert default <= 1.10 * level_6


def test_streamed_png_of_a_rendering_equals_the_computed_array(demo_path, tmp_path) -> None:
    rendering = md.render(
        md.open_image(demo_path),
        md.parse_request("/0/0/0/?c=1|600:24000$0000FF,3|700:15000$FF0000&region=100,50,2500,1900"),
    )
    assert rendering.data.numblocks[0] > 1  # several row bands are streamed
    path = md.to_png(rendering, tmp_path / "crop.png")
    assert np.array_equal(np.asarray(Image.open(path)), rendering.compute())


def test_missing_rows_are_an_error_and_leave_no_file(tmp_path) -> None:
    buffer = io.BytesIO()
    writer = PngWriter(buffer, 4, 4, 3)
    writer.write(np.zeros((3, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="3 of 4 rows"):
        writer.close()
    with pytest.raises(OutputError, match="uint8"):
        md.to_png(np.zeros((4, 4, 3), np.uint16), tmp_path / "x.png")
    with pytest.raises(OutputError, match="empty"):
        md.to_png(np.zeros((0, 4, 3), np.uint8), tmp_path / "x.png")
    with pytest.raises(OutputError, match="1-4 samples"):
        md.to_png(np.zeros((4, 4, 5), np.uint8), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


class _SlowRemote(SourceBase):
    """A file source behaving as a network source: it wants 8 tiles in flight and each
    read takes 50 ms. Records the most reads that overlapped."""

    io_concurrency = 8

    def __init__(self, inner) -> None:
        self.inner, self.info = inner, inner.info
        self._lock = threading.Lock()
        self.active = self.peak = 0

    def __dask_tokenize__(self):
        return ("slow", self.inner.__dask_tokenize__())

    def read_region(self, level, rect, channels, *, z=0, t=0):
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(0.05)
            return self.inner.read_region(level, rect, channels, z=z, t=t)
        finally:
            with self._lock:
                self.active -= 1

    def close(self) -> None:
        pass


@pytest.mark.slow
def test_streamed_png_keeps_a_network_sources_tiles_in_flight(tiny_ome_tiff, tmp_path) -> None:
    source = _SlowRemote(md.open_image(tiny_ome_tiff))
    request = md.parse_request("/0/0/0/?c=1|500:20000$0000FF&region=0,0,1100,700")
    rendering = md.render(source, request, chunk_size=128)  # 9 x 6 chunks
    path = md.to_png(rendering, tmp_path / "remote.png")
    assert source.peak == source.io_concurrency  # not one row of 9, not 2 cores' worth
    expected = md.render(source.inner, request, chunk_size=128).compute()
    assert np.array_equal(np.asarray(Image.open(path)), expected)


def test_a_plain_dask_array_is_streamed_too(tmp_path) -> None:
    import dask.array as da

    pixels = _images(301, 203, 3)["noise"]
    lazy = da.from_array(pixels, chunks=(64, 100, 3))
    path = md.to_png(lazy, tmp_path / "dask.png", threads=2)
    assert np.array_equal(np.asarray(Image.open(path)), pixels)


class _BreaksHalfway(_SlowRemote):
    """Reads below row 300 fail, as a server that goes away mid-render."""

    io_concurrency = None

    def read_region(self, level, rect, channels, *, z=0, t=0):
        if rect.y >= 300:
            raise md.TileReadError(f"tile at y={rect.y:g} is gone")
        return self.inner.read_region(level, rect, channels, z=z, t=t)


def test_a_read_failure_mid_stream_names_the_tile_and_leaves_no_file(tiny_ome_tiff, tmp_path):
    source = _BreaksHalfway(md.open_image(tiny_ome_tiff))
    request = md.parse_request("/0/0/0/?c=1|500:20000$0000FF&region=0,0,1100,700")
    rendering = md.render(source, request, chunk_size=128)
    (tmp_path / "keep.png").write_bytes(b"old")
    with pytest.raises(md.TileReadError, match=r"tile at y=\d+ is gone"):
        md.to_png(rendering, tmp_path / "keep.png")
    assert (tmp_path / "keep.png").read_bytes() == b"old"  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # no temporary left
