"""Zarr v3 shards encoded here, chunk by chunk, so a shard is never held decoded.

A shard (``sharding_indexed``, zarr v3) is its inner chunks' encoded bytes, one after
the other, then an index of ``(offset, nbytes)`` per chunk (``2**64 - 1`` twice for a
chunk not stored), little-endian uint64 in C order, then the index's CRC32C
(``index_codecs``: bytes little-endian, crc32c; ``index_location``: end). Each chunk
is encoded as the array declares: bytes (little-endian), then zstd. Encoding each chunk
as soon as it is rendered lets dask drop the chunk's pixels at once: a shard task then
holds the shard's compressed bytes, not 16 rendered chunks and a shard-sized copy of
them (about 100 MB at 4 x 4 chunks of 1024 x 1024 x 3). The layout is checked against
the array's own metadata before any shard is written (:func:`check_layout`), and every
test that writes a sharded store reads it back through zarr.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["ZSTD_LEVEL", "check_layout", "codec_options", "encode_chunk", "shard_bytes"]

ZSTD_LEVEL = 0  # zstd's default level (3), as zarr's own default for v3 arrays
_EMPTY = np.uint64(2**64 - 1)


def codec_options() -> dict[str, Any]:
    """``create_array`` arguments fixing the codecs this module encodes with."""
    from zarr.codecs import BytesCodec, ZstdCodec

    return {
        "serializer": BytesCodec(endian="little"),
        "compressors": ZstdCodec(level=ZSTD_LEVEL, checksum=False),
    }


def check_layout(array: Any, side: int, unit: int) -> None:
    """Raise ``RuntimeError`` unless ``array`` is sharded as this module writes shards."""
    codecs = array.metadata.to_dict().get("codecs", [])
    config = codecs[0].get("configuration", {}) if len(codecs) == 1 else {}
    inner = config.get("codecs", [])
    index = config.get("index_codecs", [])
    ok = (
        codecs[0].get("name") == "sharding_indexed"
        and list(config.get("chunk_shape", ())) == [array.shape[0], side, side]
        and tuple(array.shards or ()) == (array.shape[0], unit, unit)
        and [c.get("name") for c in inner] == ["bytes", "zstd"]
        and inner[0].get("configuration", {}).get("endian", "little") == "little"
        and inner[1].get("configuration") == {"level": ZSTD_LEVEL, "checksum": False}
        and [c.get("name") for c in index] == ["bytes", "crc32c"]
        and index[0].get("configuration", {}).get("endian") == "little"
        and config.get("index_location", "end") == "end"
        and array.metadata.to_dict()
        .get("chunk_key_encoding", {})
        .get("configuration", {})
        .get("separator", "/")
        == "/"
    )
    if not ok:
        raise RuntimeError(f"minerva-dask internal error: unexpected shard layout {codecs}")


def encode_chunk(pixels: np.ndarray, side: int) -> bytes:
    """One inner chunk ``(c, h, w)`` (``h, w <= side``; an edge chunk is padded with the
    fill value 0 to the full chunk, as zarr stores it) as its stored bytes."""
    import numcodecs

    c, h, w = pixels.shape
    if (h, w) != (side, side):
        full = np.zeros((c, side, side), pixels.dtype)
        full[:, :h, :w] = pixels
        pixels = full
    raw = np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("<"))
    return bytes(numcodecs.Zstd(level=ZSTD_LEVEL).encode(raw.tobytes()))


def shard_bytes(chunks: dict[tuple[int, int], bytes], per: int) -> bytes:
    """A shard of ``per x per`` inner chunks from ``{(row, col): encoded}`` (rows and
    columns inside the shard; chunks past the array's edge are absent)."""
    import google_crc32c

    index = np.full((1, per, per, 2), _EMPTY, dtype="<u8")
    parts, offset = [], 0
    for (row, col), data in sorted(chunks.items()):
        index[0, row, col] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    table = index.tobytes()
    parts += [table, np.uint32(google_crc32c.value(table)).astype("<u4").tobytes()]
    return b"".join(parts)
