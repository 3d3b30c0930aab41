"""PNG output, encoded on all cores and streamed band by band.

A PNG's pixels are one zlib stream, so they are usually deflated on one core. We cut the
rows into bands of about :data:`BAND_BYTES` and deflate each band on its own thread into a
raw deflate stream ended by a sync flush (byte aligned, not final), as pigz does for gzip;
the bands joined, closed by an empty final block and the Adler-32 of all filtered bytes,
are one valid zlib stream. Each band becomes one ``IDAT`` chunk. Deflate is zlib-ng
(``zlib_ng``, the zlib API, GIL released), 1.6-2.7x faster than zlib at the same level.
The default level is :data:`PNG_LEVEL` (3), not zlib's customary 6: its files are
0.8-3.2% larger than level 6's on the benchmark crops and 1.3-8.6% on the sample images,
in 25-75% of the time (bench/RESULTS.md); ``level=6`` or ``9`` is there for smaller files.

Each row is filtered (PNG filter None, Sub or Up) with the one of smallest sum of absolute
residuals, libpng's heuristic over the three filters that vectorise cheaply; files come
within about 5% of libpng's at the same level (bench/RESULTS.md). That heuristic misjudges
dark, sparse composites, where Sub and Up turn long runs of black and of saturated colour
into noise: before a band is filtered, a trial deflate of a sample of its rows (a few runs
of consecutive rows, a few percent of them) filtered both ways decides whether it is written
unfiltered instead, which is then both smaller (up to 20%) and quicker.

Rows arrive in order, so a rendering is computed and encoded row band by row band: the
output never has to fit in memory, and rendering overlaps encoding.
"""

from __future__ import annotations

import os
import struct
import threading
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import zlib_ng.zlib_ng as zng

from ..errors import BlockMismatchError, OutputError
from ._atomic import atomic_write, check_output_path
from ._meta import check_block, check_pixels

__all__ = ["BAND_BYTES", "PNG_LEVEL", "PngWriter", "encode_png", "write_png"]

BAND_BYTES = 1 << 20
"""Raw bytes per independently deflated row band (at least one row)."""

PNG_LEVEL = 3
"""Default zlib(-ng) level: files within 10% of level 6's at well under its time."""

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # samples per pixel -> PNG colour type


def _chunk(kind: bytes, payload: bytes) -> bytes:
    crc = zng.crc32(payload, zng.crc32(kind))
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)


_scratch = threading.local()


def _scratch_rows(rows: int, row_bytes: int) -> np.ndarray:
    """This thread's ``(3, rows, row_bytes)`` uint8 scratch, kept between bands: freshly
    mapped memory costs a page fault per 4 kB, as much as the filtering itself."""
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.shape[1] < rows or buffer.shape[2] != row_bytes:
        buffer = _scratch.buffer = np.empty((3, rows, row_bytes), np.uint8)
    return buffer[:, :rows]


def _filter_rows(rows: np.ndarray, previous: np.ndarray, bpp: int) -> np.ndarray:
    """PNG-filter ``(n, row_bytes)`` uint8 rows; ``previous`` is the row above the first.

    Returns ``(n, 1 + row_bytes)``: per row the filter type byte, then the residuals.
    """
    sub, up, magnitude = _scratch_rows(*rows.shape)
    sub[:, :bpp] = rows[:, :bpp]
    np.subtract(rows[:, bpp:], rows[:, :-bpp], out=sub[:, bpp:])
    np.subtract(rows[:1], previous, out=up[:1])
    np.subtract(rows[1:], rows[:-1], out=up[1:])
    candidates = (rows, sub, up)
    costs = np.empty((3, rows.shape[0]), np.uint32)
    for kind, candidate in enumerate(candidates):
        _residual_cost(candidate, magnitude, costs[kind])
    best = costs.argmin(axis=0)
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = best
    for kind, candidate in enumerate(candidates):
        picked = best == kind
        if picked.all():
            out[:, 1:] = candidate
        elif picked.any():
            out[picked, 1:] = candidate[picked]
    return out


def _residual_cost(residuals: np.ndarray, scratch: np.ndarray, out: np.ndarray) -> None:
    """Per row, the sum of |residual| with bytes read as signed (libpng's heuristic), into
    ``out``; ``scratch`` is as big as ``residuals``."""
    np.negative(residuals, out=scratch)  # uint8: -r wraps to 256 - r
    np.minimum(residuals, scratch, out=scratch)
    scratch.sum(axis=1, dtype=np.uint32, out=out)


def _unfiltered(rows: np.ndarray) -> np.ndarray:
    """``(n, row_bytes)`` rows as PNG filter None: ``(n, 1 + row_bytes)``, type byte 0."""
    out = np.empty((rows.shape[0], rows.shape[1] + 1), np.uint8)
    out[:, 0] = 0
    out[:, 1:] = rows
    return out


_TRIAL_RUNS = 4
_TRIAL_RUN_BYTES = 1 << 13


def _unfiltered_deflates_smaller(rows: np.ndarray, previous: np.ndarray, bpp: int) -> bool:
    """Whether ``(n, row_bytes)`` rows deflate smaller unfiltered than filtered row by row
    (:func:`_filter_rows`), judged by deflating (level 1) a sample of them both ways:
    :data:`_TRIAL_RUNS` runs of consecutive rows spread over the band, each about
    :data:`_TRIAL_RUN_BYTES` (the whole band when it is smaller than that)."""
    n, row_bytes = rows.shape
    run = max(2, -(-_TRIAL_RUN_BYTES // row_bytes))
    if n <= _TRIAL_RUNS * run:
        starts, run = [0], n
    else:
        starts = [i * (n - run) // (_TRIAL_RUNS - 1) for i in range(_TRIAL_RUNS)]
    plain = np.concatenate([_unfiltered(rows[s : s + run]) for s in starts])
    filtered = np.concatenate(
        [_filter_rows(rows[s : s + run], rows[s - 1] if s else previous, bpp) for s in starts]
    )
    return len(zng.compress(plain, 1)) <= len(zng.compress(filtered, 1))


def _filter_band(rows: np.ndarray, previous: np.ndarray, bpp: int, level: int) -> np.ndarray:
    """A band's rows with their PNG filters, as deflated: unfiltered at level 0 (stored:
    filtering would not shrink it) or where a trial says so, else row by row."""
    if level == 0 or _unfiltered_deflates_smaller(rows, previous, bpp):
        return _unfiltered(rows)
    return _filter_rows(rows, previous, bpp)


def _deflate_band(
    rows: np.ndarray, previous: np.ndarray, bpp: int, level: int
) -> tuple[bytes, np.ndarray]:
    """One band as an ``IDAT`` chunk of raw deflate ending in a sync flush, and the
    filtered bytes it holds (for the stream's Adler-32)."""
    filtered = _filter_band(rows, previous, bpp, level)
    deflater = zng.compressobj(level, zng.DEFLATED, -15)
    body = deflater.compress(filtered) + deflater.flush(zng.Z_SYNC_FLUSH)
    return _chunk(b"IDAT", body), filtered


class PngWriter:
    """Write a PNG to ``fh`` from rows given in order, top to bottom.

    Parameters
    ----------
    fh
        A binary file open for writing.
    width, height
        Image size in pixels (x, y).
    samples
        Samples per pixel: 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA); 8 bits each.
    level
        zlib compression level 0-9 (default :data:`PNG_LEVEL`).
    threads
        Threads deflating bands (default: the machine's cores).

    Call :meth:`write` with ``(rows, width[, samples])`` uint8 blocks until ``height`` rows
    have been given, then :meth:`close`; or use it as a context manager, which closes it
    on success and calls :meth:`abort` on an error. Bands are deflated in the background:
    a block's memory must not change until :meth:`close` returns (the writer keeps no
    copy).
    """

    def __init__(
        self,
        fh: BinaryIO,
        width: int,
        height: int,
        samples: int = 3,
        *,
        level: int = PNG_LEVEL,
        threads: int | None = None,
    ) -> None:
        _check_header(width, height, samples, level)
        self.fh, self.width, self.height, self.samples = fh, width, height, samples
        self.level = level
        self._row_bytes = width * samples
        self._band_rows = max(1, BAND_BYTES // self._row_bytes)
        self._previous = np.zeros(self._row_bytes, np.uint8)
        self._rows_given = 0
        self._adler = 1
        self._threads = threads or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix="png")
        self._pending: deque[Future[tuple[bytes, np.ndarray]]] = deque()
        header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPES[samples], 0, 0, 0)
        zlib_header = zng.compress(b"", level)[:2]  # CMF/FLG for this level
        fh.write(_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib_header))

    def write(self, rows: np.ndarray) -> None:
        """Add the next ``(n, width[, samples])`` uint8 rows."""
        if rows.dtype != np.uint8:
            raise ValueError(f"PNG rows must be uint8, got {rows.dtype}")
        expected = (self.width,) if self.samples == 1 else (self.width, self.samples)
        if rows.shape[1:] != expected:
            raise ValueError(
                f"PNG rows must be (n, {', '.join(map(str, expected))}), got {rows.shape}"
            )
        if self._rows_given + rows.shape[0] > self.height:
            raise ValueError(f"more than the {self.height} rows announced")
        flat = np.ascontiguousarray(rows).reshape(rows.shape[0], self._row_bytes)
        for start in range(0, flat.shape[0], (step := self._band_step(flat.shape[0]))):
            band = flat[start : start + step]
            job = self._pool.submit(_deflate_band, band, self._previous, self.samples, self.level)
            self._pending.append(job)
            self._previous = band[-1]
            while len(self._pending) > 2 * self._threads:
                self._write_next()
        self._rows_given += flat.shape[0]

    def _band_step(self, rows: int) -> int:
        """Rows per band for a block of ``rows``: bands of at most about ``BAND_BYTES``, in
        a multiple of the threads when there are several, so no thread waits on the
        block's last band alone (three 1 MB bands on two threads take two band times;
        four 0.75 MB bands, one and a half)."""
        bands = -(-rows // self._band_rows)
        if bands > 1 and self._threads > 1:
            bands = -(-bands // self._threads) * self._threads
        return max(1, -(-rows // bands))

    def _write_next(self) -> None:
        chunk, filtered = self._pending.popleft().result()
        self.fh.write(chunk)
        self._adler = zng.adler32(filtered, self._adler)

    def close(self) -> None:
        """Finish the stream (final block, Adler-32, ``IEND``); all rows must be given."""
        try:
            while self._pending:
                self._write_next()
            if self._rows_given != self.height:
                raise ValueError(f"{self._rows_given} of {self.height} rows were given")
            final_block = zng.compressobj(self.level, zng.DEFLATED, -15).flush()
            trailer = final_block + struct.pack(">I", self._adler)
            self.fh.write(_chunk(b"IDAT", trailer) + _chunk(b"IEND", b""))
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def abort(self) -> None:
        """Stop without finishing the file (after an error)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PngWriter:
        return self

    def __exit__(self, kind: Any, error: Any, traceback: Any) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()


def _check_header(width: int, height: int, samples: int, level: int) -> None:
    """Raise ``ValueError`` naming what a PNG cannot hold: its size, samples or level."""
    if not (0 < width < 2**31 and 0 < height < 2**31):
        raise ValueError(f"a PNG needs 1 to 2**31-1 pixels a side, got {width} x {height}")
    if samples not in _COLOUR_TYPES:
        raise ValueError(f"a PNG pixel has 1-4 samples, got {samples}")
    if not 0 <= level <= 9:
        raise ValueError(f"zlib level must be 0-9, got {level}")


def _samples(shape: tuple[int, ...]) -> int:
    """Samples per pixel of a ``(height, width[, samples])`` shape a PNG can hold."""
    if len(shape) == 2:
        return 1
    if len(shape) == 3 and shape[2] in _COLOUR_TYPES:
        return shape[2]
    raise ValueError(f"PNG needs (height, width[, 1-4]) pixels, got shape {shape}")


def encode_png(pixels: np.ndarray, *, level: int = PNG_LEVEL, threads: int | None = None) -> bytes:
    """Encode ``(height, width[, samples])`` uint8 pixels (axes y, x, colour) as PNG bytes.

    >>> import imagecodecs
    >>> rgb = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    >>> bool((imagecodecs.png_decode(encode_png(rgb)) == rgb).all())
    True
    """
    import io

    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"PNG needs uint8 pixels, got {pixels.dtype}")
    buffer = io.BytesIO()
    samples = _samples(pixels.shape)
    with PngWriter(
        buffer, pixels.shape[1], pixels.shape[0], samples, level=level, threads=threads
    ) as writer:
        writer.write(pixels)
    return buffer.getvalue()


def write_png(
    rows: Iterable[np.ndarray],
    path: str | os.PathLike[str],
    *,
    shape: tuple[int, ...],
    dtype: Any = np.uint8,
    inputs: tuple[Any, ...] = (),
    level: int = PNG_LEVEL,
    overwrite: bool = True,
    threads: int | None = None,
) -> Path:
    """Write ``rows``, uint8 row blocks ``(y, width[, samples])`` top to bottom, as a PNG of
    ``shape`` (``(height, width[, samples])``) at ``path``, atomically; the writer of
    :func:`minerva_dask.to_png` (parameters there). ``inputs``: files never replaced.

    The path, pixel type and size are checked before the first block is asked for:
    ``rows`` may be lazy, computed as they are consumed."""
    target = check_output_path(path, overwrite=overwrite, inputs=inputs)
    check_pixels(shape, dtype, target, "png")  # known, uint8, not empty: one line
    if threads is not None and (
        isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
    ):
        raise OutputError(
            f"cannot write {target}: threads must be a number of threads >= 1 (None: one "
            f"per core), got {threads!r}"
        )
    try:  # before any file or work: what the PNG could not hold
        samples = _samples(shape)
        _check_header(shape[1], shape[0], samples, level)
    except ValueError as exc:
        raise OutputError(f"cannot write {target}: {exc}") from None
    with (
        atomic_write(target, inputs=inputs, overwrite=overwrite) as fh,
        PngWriter(fh, shape[1], shape[0], samples, level=level, threads=threads) as writer,
    ):
        top = 0
        for index, block in enumerate(rows):
            block = np.asarray(block)
            height = min(block.shape[0], shape[0] - top) if block.ndim else 0
            where = f"row block {index} (rows {top}..{top + height})"
            block = check_block(block, where, (height, *shape[1:]), np.uint8)
            writer.write(block[..., 0] if block.ndim == 3 and samples == 1 else block)
            top += height
        if top != shape[0]:
            raise BlockMismatchError(
                f"cannot write {target}: the image's blocks computed {top} rows, declared "
                f"{shape[0]}: the dask array's chunks do not match what its blocks compute"
            )
    return target
