"""The composite kernel and its presets against the reference formulas."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

from minerva_dask.kernel import composite
from tests.reference import composite_linear


def style(start, end, color, *, inverted=False, alpha=1.0, family="linear", coefficient=1.0):
    return SimpleNamespace(
        start=start,
        end=end,
        color=color,
        alpha=alpha,
        inverted=inverted,
        family=family,
        coefficient=coefficient,
    )


@pytest.fixture
def planes() -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 65536, (4, 97, 131), dtype=np.uint16)


COLOURS = [(0, 0, 1), (0, 1, 0), (1, 0, 0), (1, 0.5, 0.25)]
WINDOWS = [(300, 12000), (0, 65535), (500, 9000), (1000, 1000)]


def test_linear_equals_the_reference_formula(planes: np.ndarray) -> None:
    styles = [style(s, e, c) for (s, e), c in zip(WINDOWS, COLOURS, strict=True)]
    assert np.array_equal(composite(planes, styles), composite_linear(planes, WINDOWS, COLOURS))


def test_linear_with_gamma_and_inversion(planes: np.ndarray) -> None:
    inverted = [True, False, False, True]
    styles = [
        style(s, e, c, inverted=i) for (s, e), c, i in zip(WINDOWS, COLOURS, inverted, strict=True)
    ]
    expected = composite_linear(planes, WINDOWS, COLOURS, gamma=2.2, inverted=inverted)
    assert np.array_equal(composite(planes, styles, gamma=2.2), expected)


@pytest.mark.parametrize(
    "colours",
    [
        [(0, 0, 1), (0, 0, 1), (0.5, 0, 0), (0, 0, 0.25)],  # blue twice, green never touched
        [(1, 0.5, 0.25), (1, 0, 0), (0, 1, 0), (1, 1, 1)],  # primaries after a mixed colour
        [(0.3, 0, 0), (0, 0, 0), (1, 0, 0), (0, 0.7, 0)],  # a black channel; weights below 1
    ],
)
def test_components_written_first_equal_adding_to_zeros(planes, colours) -> None:
    """The first channel on a component writes it instead of adding to a zeroed one."""
    styles = [style(s, e, c) for (s, e), c in zip(WINDOWS, colours, strict=True)]
    assert np.array_equal(composite(planes, styles), composite_linear(planes, WINDOWS, colours))


def test_window_start_equal_to_end_is_a_step_not_nan() -> None:
    plane = np.array([[[99, 100, 101]]], np.uint16)
    for preset in ("linear", "omero", "minerva-2018"):
        out = composite(plane, [style(100, 100, (1, 1, 1))], preset=preset, gamma=1.0)
        assert out[0, :, 0].tolist() == [0, 255, 255], preset


def test_additive_colours_clip_at_white() -> None:
    plane = np.full((2, 1, 1), 65535, np.uint16)
    out = composite(plane, [style(0, 65535, (1, 0.6, 0)), style(0, 65535, (1, 0.6, 1))])
    assert out[0, 0].tolist() == [255, 255, 255]


def omero_reference(planes, windows, colours):
    """api-contract.md 1.4, emulator-grade Python reference, copied literally."""

    def q_linear(x, s, e):
        v = np.floor(255.0 * (x - s) / (e - s) + 0.5)
        return np.where(x < s, 0, np.where(x >= e, 255, v)).astype(np.uint8)

    qs = [q_linear(p.astype(np.int64), s, e) for p, (s, e) in zip(planes, windows, strict=True)]
    out = np.zeros((*qs[0].shape, 3), np.int32)
    for q, rgb in zip(qs, colours, strict=True):
        for i, comp in enumerate(rgb):
            out[..., i] += (comp / 255.0 * q).astype(np.int32)
    return np.minimum(out, 255).astype(np.uint8)


def test_omero_preset_equals_the_contract_formula(planes: np.ndarray) -> None:
    windows = [(300, 12000), (0, 65535), (500, 9000)]
    colours255 = [(0, 0, 255), (0, 255, 0), (255, 128, 64)]
    styles = [
        style(s, e, tuple(v / 255 for v in c))
        for (s, e), c in zip(windows, colours255, strict=True)
    ]
    out = composite(planes[:3], styles, preset="omero")
    assert np.array_equal(out, omero_reference(planes[:3], windows, colours255))


def test_omero_preset_inverts_the_quantum() -> None:
    plane = np.array([[[0, 50, 100]]], np.uint16)
    out = composite(plane, [style(0, 100, (1, 1, 1), inverted=True)], preset="omero")
    assert out[0, :, 0].tolist() == [255, 127, 0]


def test_omero_polynomial_family() -> None:
    plane = np.array([[[0, 50, 100]]], np.uint16)
    out = composite(
        plane, [style(0, 100, (1, 1, 1), family="polynomial", coefficient=2)], preset="omero"
    )
    assert out[0, :, 0].tolist() == [0, 64, 255]  # floor(255 * 0.25 + 0.5) = 64


def test_minerva_2018_preset_reproduces_its_reference_bit_for_bit(shared_data) -> None:
    folder = shared_data / "reference" / "minerva-lib-2018-red-green"
    planes = np.stack([_assemble(folder / name) for name in ("red", "green")])
    styles = [style(0.0, 65535.0, (1, 0, 0)), style(0.006 * 65535, 0.024 * 65535, (0, 1, 0))]
    out = composite(planes, styles, preset="minerva-2018")
    assert np.array_equal(out, np.load(folder / "red_green_normalized.npy"))


def _assemble(folder) -> np.ndarray:
    """{channel}/{i}/{j}/tile.npy: i is the tile column (x), j the tile row (y)."""
    out = np.zeros((1024, 1024), np.uint16)
    for i in range(4):
        for j in range(4):
            out[j * 256 : (j + 1) * 256, i * 256 : (i + 1) * 256] = np.load(
                folder / str(i) / str(j) / "tile.npy"
            )
    return out


def test_memory_does_not_grow_with_the_number_of_channels() -> None:
    """In place: accumulator (3 planes) + 2 scratch planes + output, not 3 planes a channel."""
    height = width = 256
    pixels = height * width
    peaks = {}
    for channels in (2, 16):
        planes = np.ones((channels, height, width), np.uint16)
        styles = [style(0, 10, (0.5, 0.25, 1))] * channels
        out = np.empty((height, width, 3), np.uint8)
        tries = []  # tracemalloc counts every thread's allocations: an earlier test's
        for _ in range(3):  # server or pool thread may add some; the least of 3 is ours
            tracemalloc.start()
            composite(planes, styles, out=out)
            tries.append(tracemalloc.get_traced_memory()[1])
            tracemalloc.stop()
        peaks[channels] = min(tries)
    assert peaks[16] <= 6 * 4 * pixels  # float32: 3 accumulator + 2 scratch planes (+ slack)
    assert peaks[16] - peaks[2] < pixels  # no per-channel temporaries


def test_output_is_written_into_the_given_array() -> None:
    out = np.zeros((1, 2, 3), np.uint8)
    result = composite(np.array([[[0, 10]]], np.uint16), [style(0, 10, (1, 1, 1))], out=out)
    assert result is out
    assert out[0, 1].tolist() == [255, 255, 255]


def test_unknown_preset_and_server_only_families_are_rejected() -> None:
    plane = np.zeros((1, 1, 1), np.uint16)
    with pytest.raises(ValueError, match="unknown preset"):
        composite(plane, [style(0, 1, (1, 1, 1))], preset="vips")
    with pytest.raises(ValueError, match="only rendered by an OMERO server"):
        composite(plane, [style(0, 1, (1, 1, 1), family="logarithmic")])
