"""What a user can get wrong when calling an export is one line of ours, raised before
anything is written: the image (its axes, pixel type, an unknown or empty shape), the
block side, the compute options and client, the destination. A block that computes to
another dtype or shape than its array declared fails naming it, and leaves nothing."""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import pytest

import minerva_dask as md
from minerva_dask.errors import BlockMismatchError, OutputError, RequestError
from minerva_dask.exports import to_ome_tiff_planes

RGB = np.zeros((40, 40, 3), np.uint8)


def _unknown_shape() -> da.Array:
    x = da.ones((40, 40, 3), dtype=np.uint8, chunks=(20, 20, 3))
    return x[x[:, 0, 0] > 0]  # boolean indexing: NaN rows


def _blocks_compute(dtype: Any, rows: int | str | None = None) -> da.Array:
    """A uint8 array whose blocks compute as ``dtype`` (and ``rows`` rows, or 2-D)."""
    x = da.ones((40, 40, 3), dtype=dtype, chunks=(20, 20, 3))
    if rows == "2-D":
        return x.map_blocks(lambda b: b[..., 0], dtype=np.uint8)
    return x.map_blocks(lambda b: b[:rows], dtype=np.uint8)


WRITERS = {
    "png": lambda image, out, **kw: md.to_png(image, out / "o.png", **kw),
    "tif": lambda image, out, **kw: md.to_ome_tiff(image, out / "o.ome.tif", **kw),
    "zarr": lambda image, out, **kw: md.to_ome_zarr(image, out / "o.ome.zarr", **kw),
    "dzi": lambda image, out, **kw: md.to_dzi(image, out / "o.dzi", **kw),
    "groups": lambda image, out, **kw: md.to_dzi_groups({"a": image}, out / "view", **kw),
}

ALL = tuple(WRITERS)

# (writers, image, error, words): refused before anything is written
BAD_IMAGES = [
    (
        ("tif", "zarr", "dzi", "groups"),
        np.zeros((40, 40), np.uint8),
        OutputError,
        ("expected (height, width, 3) uint8", "(40, 40) uint8"),
    ),
    (
        ("png", "tif", "zarr", "dzi", "groups"),
        np.zeros((40, 40, 3), np.uint16),
        OutputError,
        ("uint8", "uint16"),
    ),
    (
        ("png", "tif", "zarr", "dzi", "groups"),
        np.zeros((0, 40, 3), np.uint8),
        OutputError,
        ("empty",),
    ),
    (
        ("png", "tif", "zarr", "dzi", "groups"),
        np.zeros((40, 0, 3), np.uint8),
        OutputError,
        ("empty",),
    ),
    (
        ("png", "tif", "zarr", "dzi", "groups"),
        "unknown",
        OutputError,
        ("not known", ".compute_chunk_sizes()"),
    ),
    (
        ("png", "tif", "zarr", "dzi", "groups"),
        "huge",
        OutputError,
        ("10000000 x 10000000 pixels", "2^40"),
    ),
]


def _cases(table: list[tuple]) -> list[Any]:
    return [
        pytest.param(name, *rest, id=f"{name}-{index}")
        for index, (names, *rest) in enumerate(table)
        for name in names
    ]


def _nothing_written(out: Path) -> None:
    left = sorted(p.name for p in out.iterdir())
    assert left == [], f"left behind: {left}"


def _one_line(exc: BaseException, words: tuple[str, ...]) -> None:
    text = str(exc)
    assert "\n" not in text
    for word in words:
        assert word in text, (word, text)


@pytest.mark.parametrize(("writer", "image", "error", "words"), _cases(BAD_IMAGES))
def test_bad_image_is_one_line_and_nothing_is_written(
    tmp_path: Path, writer: str, image: Any, error: type, words: tuple[str, ...]
) -> None:
    if isinstance(image, str) and image == "unknown":
        image = _unknown_shape()
    elif isinstance(image, str):  # 10^14 px of zeros: ran away in memory before it was refused
        import dask.array as da

        image = da.zeros((10**7, 10**7, 3), dtype=np.uint8, chunks=(4096, 4096, 3))
    with pytest.raises(error) as caught:
        WRITERS[writer](image, tmp_path)
    assert type(caught.value) is error
    _one_line(caught.value, words)
    _nothing_written(tmp_path)


PLANES_BAD = [
    (np.zeros((2, 0, 40), np.uint16), OutputError, ("empty",)),
    (np.zeros((0, 40, 40), np.uint16), OutputError, ("empty",)),
    (np.zeros((40, 40), np.uint16), OutputError, ("(channels, height, width) unsigned",)),
    (np.zeros((2, 40, 40), np.float32), OutputError, ("unsigned", "float32")),
]


@pytest.mark.parametrize(("planes", "error", "words"), PLANES_BAD)
def test_bad_planes_are_one_line(tmp_path: Path, planes: Any, error: type, words: tuple) -> None:
    with pytest.raises(error) as caught:
        to_ome_tiff_planes(planes, tmp_path / "p.ome.tif")
    _one_line(caught.value, words)
    _nothing_written(tmp_path)


@pytest.mark.parametrize("chunk", [-5, 0, 2.5, "x", True, 2**20])
@pytest.mark.parametrize("writer", ["tif", "zarr", "planes"])
def test_bad_chunk_is_one_line(tmp_path: Path, writer: str, chunk: Any) -> None:
    def write() -> Any:
        if writer == "planes":
            planes = np.zeros((2, 40, 40), np.uint16)
            return to_ome_tiff_planes(planes, tmp_path / "p.tif", chunk=chunk)
        return WRITERS[writer](RGB, tmp_path, chunk=chunk)

    with pytest.raises(OutputError) as caught:
        write()
    _one_line(caught.value, ("chunk must be a whole number within 1..16384 pixels", repr(chunk)))
    _nothing_written(tmp_path)


def test_render_chunk_size_follows_the_same_rule(demo_path: Path) -> None:
    source = md.open_image(demo_path)
    request = md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,256,256")
    with pytest.raises(RequestError, match="chunk size must be a whole number within"):
        md.render(source, request, chunk_size=0)


BAD_COMPUTE = [
    ({"compute_kwargs": {"num_workers": -1}}, ("num_workers", ">= 1", "-1")),
    ({"compute_kwargs": {"num_workers": 0}}, ("num_workers", ">= 1")),
    ({"compute_kwargs": [1]}, ("compute_kwargs must be a mapping",)),
    ({"compute_kwargs": {"scheduler": "nonsense"}}, ("scheduler", "Expected one of")),
    ({"compute_kwargs": {"scheduler": 5}}, ("scheduler", "Unexpected scheduler: 5")),
    ({"compute_kwargs": {"pool": 3}}, ("pool must be a concurrent.futures executor", "int")),
    ({"client": "tcp://127.0.0.1:1"}, ("client=", "not an address", "scheduler=")),
    ({"client": 5}, ("client=", "distributed.Client", "int")),
]


def _compute_cases() -> list[Any]:
    cases = []
    for writer in ("tif", "zarr", "dzi", "groups", "png"):
        for index, (options, words) in enumerate(BAD_COMPUTE):
            if writer == "png" and "compute_kwargs" in options:  # to_png: as keywords
                if not isinstance(options["compute_kwargs"], dict):
                    continue
                options = options["compute_kwargs"]
            cases.append(pytest.param(writer, options, words, id=f"{writer}-{index}"))
    return cases


@pytest.mark.parametrize(("writer", "options", "words"), _compute_cases())
def test_bad_compute_options_are_one_line(
    tmp_path: Path, writer: str, options: dict[str, Any], words: tuple[str, ...]
) -> None:
    with pytest.raises(RequestError) as caught:
        WRITERS[writer](RGB, tmp_path, **options)
    _one_line(caught.value, words)
    _nothing_written(tmp_path)


def test_png_threads_below_one_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as caught:
        md.to_png(RGB, tmp_path / "o.png", threads=-1)
    _one_line(caught.value, ("threads must be a number of threads >= 1", "-1"))
    _nothing_written(tmp_path)


@pytest.mark.slow
def test_closed_client_is_one_line(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    client = distributed.Client(
        processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0"
    )
    client.close()
    for writer in ("tif", "zarr", "dzi", "png"):
        with pytest.raises(RequestError) as caught:
            WRITERS[writer](RGB, tmp_path, client=client)
        _one_line(caught.value, ("client=", "closed"))
    _nothing_written(tmp_path)


# (writers, blocks' dtype, rows each block computes, words)
MISMATCHED_BLOCKS = [
    (("png", "tif", "zarr", "dzi"), np.uint16, None, ("computed as uint16", "declared uint8")),
    (("tif", "zarr", "dzi"), np.uint8, 5, ("block (", "computed as uint8", "declared uint8")),
    (("png",), np.uint8, 5, ("block (", "computed as uint8", "declared uint8")),
    (("png", "tif", "zarr", "dzi"), np.uint8, "2-D", ("computed as uint8", "declared uint8")),
]


@pytest.mark.parametrize(("writer", "dtype", "rows", "words"), _cases(MISMATCHED_BLOCKS))
def test_block_not_as_declared_is_named_and_nothing_is_left(
    tmp_path: Path, writer: str, dtype: Any, rows: int | str | None, words: tuple[str, ...]
) -> None:
    with pytest.raises(BlockMismatchError) as caught:
        WRITERS[writer](_blocks_compute(dtype, rows), tmp_path)
    _one_line(caught.value, words)
    _nothing_written(tmp_path)


def test_block_mismatch_pickles_as_ours() -> None:
    error = pickle.loads(pickle.dumps(BlockMismatchError("block (0, 1) computed as uint16")))
    assert type(error) is BlockMismatchError and isinstance(error, OutputError)
    assert str(error) == "block (0, 1) computed as uint16"


def test_raw_region_to_ome_tiff_planes(tmp_path: Path, demo_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    source = md.open_image(demo_path)
    request = md.parse_request("/0/0/0/?c=1|600:24000$0000FF&region=0,0,64,48")
    region = md.raw_region(source, request)
    result = to_ome_tiff_planes(region, tmp_path / "raw.ome.tif")
    assert result.shape == (48, 64)
    with tifffile.TiffFile(tmp_path / "raw.ome.tif") as tif:
        stored = tif.series[0].asarray().reshape(region.data.shape)
        assert np.array_equal(stored, region.data.compute())
        assert "(raw)" in tif.ome_metadata


def test_zarr_to_a_read_only_url_is_one_line(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8765/out.ome.zarr", "https://example.org/out.ome.zarr"):
        with pytest.raises(OutputError) as caught:
            md.to_ome_zarr(RGB, url)
        _one_line(caught.value, ("is read-only", "s3://"))


@pytest.mark.parametrize("writer", ["zarr", "dzi", "tif"])
def test_existing_output_in_read_only_folder_says_exists(
    tmp_path: Path, writer: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    names = {"zarr": "o.ome.zarr", "dzi": "o.dzi", "tif": "o.ome.tif"}
    (tmp_path / names[writer]).mkdir() if writer == "zarr" else (tmp_path / names[writer]).touch()
    real = os.access
    monkeypatch.setattr(  # as a user without write permission (tests may run as root)
        os,
        "access",
        lambda path, mode, *a, **k: False if mode & os.W_OK else real(path, mode, *a, **k),
    )
    with pytest.raises(OutputError) as caught:
        WRITERS[writer](RGB, tmp_path)
    _one_line(caught.value, ("exists", "overwrite"))
    assert "not writable" not in str(caught.value)


def test_the_writers_pixel_budget_is_the_renders() -> None:
    from minerva_dask.plan import MAX_PIXELS
    from minerva_dask.writers._meta import MAX_OUTPUT_PIXELS

    assert MAX_OUTPUT_PIXELS == MAX_PIXELS


def test_a_grey_png_of_one_sample_per_pixel_is_written(tmp_path: Path) -> None:
    from PIL import Image

    grey = np.random.default_rng(3).integers(0, 255, (128, 400, 1), dtype=np.uint8)
    md.to_png(grey, tmp_path / "g.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "g.png")), grey[..., 0])
