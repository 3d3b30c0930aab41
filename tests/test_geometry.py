"""Level choice, region scaling and the chunk grid."""

from __future__ import annotations

import math

import pytest

from minerva_dask.geometry import (
    Rect,
    choose_level,
    choose_level_omero_figure,
    plan_tile_grid,
    region_at_level,
    split_edges,
)

POW2 = [(2.0**i, 2.0**i) for i in range(6)]


def rule_2018(w: float, h: float, max_size: int, levels: int) -> int:
    """minerva-lib get_optimum_pyramid_level, the 2018 script's rule."""
    return min(max(math.ceil(math.log2(max(w, h) / max_size)), 0), levels - 1)


@pytest.mark.parametrize("size", [1, 100, 999, 1000, 1001, 2000, 2001, 4096, 40000, 10**6])
@pytest.mark.parametrize("max_size", [1, 512, 1000, 2000])
def test_general_rule_equals_the_2018_rule_on_power_of_two_pyramids(
    size: int, max_size: int
) -> None:
    assert choose_level(POW2, size, size // 2 + 1, max_size) == rule_2018(
        size, size // 2 + 1, max_size, len(POW2)
    )


def test_non_power_of_two_factors_pick_the_finest_level_that_fits() -> None:
    exemplar = [(1, 1), (2, 2), (4.0323, 4.0323), (8.0645, 8.0645), (16.667, 16.667)]
    assert choose_level(exemplar, 250, 250, 62) == 2  # 250 / 4.0323 = 61.9993 <= 62
    assert choose_level(exemplar, 250, 250, 61) == 3  # ... > 61, so the next level
    assert choose_level(exemplar, 250, 250, 1) == 4


def test_anisotropic_factors_use_each_axis() -> None:
    assert choose_level([(1, 1), (4, 2)], 400, 400, 200) == 1
    assert choose_level([(1, 1), (2, 4), (8, 8)], 400, 402, 200) == 1  # 400/2, 402/4 fit
    assert choose_level([(1, 1), (2, 4), (8, 8)], 402, 400, 200) == 2  # 402/2 = 201 > 200


def test_omero_figure_rule_matches_the_contract_example() -> None:
    # api-contract.md 3: region 48960 on a 5-level x2 pyramid, max_size 2000 -> scale 1/16
    assert choose_level_omero_figure(POW2[:5], 48960, 48960, 2000) == 4
    # strictly below max_size: 4000 / 2 = 2000 is not < 2000, so level 2 is the answer
    assert choose_level_omero_figure(POW2[:5], 4000, 4000, 2000) == 2
    assert choose_level(POW2[:5], 4000, 4000, 2000) == 1


def test_region_scaling_truncates_origin_and_size() -> None:
    assert region_at_level(Rect(-8160, -16416, 48960, 48960), (16, 16)) == Rect(
        -510, -1026, 3060, 3060
    )
    assert region_at_level(Rect(-1, -1, 3, 3), (2, 2)) == Rect(-1, -1, 1, 1)
    assert region_at_level(Rect(5, 5, 1, 1), (4, 4)) == Rect(1, 1, 1, 1)  # never empty
    assert region_at_level(Rect(0, 0, 250, 250), (250 / 62, 250 / 62)).width == 62


def test_split_edges_cut_at_tiles_and_image_edges() -> None:
    assert split_edges(0, 1024, 512, 1024) == (0, 512, 1024)
    assert split_edges(-10, 30, 512, 5) == (-10, 0, 5, 20)
    assert split_edges(600, 10, 512, 2000) == (600, 610)
    assert split_edges(-1030, 20, 512, 100) == (-1030, -1024, -1010)


def test_tile_aligned_chunks_are_inside_or_outside_never_both() -> None:
    grid = plan_tile_grid(Rect(-300, 100, 1500, 700), 1, (1000, 600), (256, 256))
    assert sum(grid.chunks[0]) == 700 and sum(grid.chunks[1]) == 1500
    level = Rect(0, 0, 1000, 600)
    for i in range(len(grid.y_edges) - 1):
        for j in range(len(grid.x_edges) - 1):
            rect = grid.chunk_rect(i, j)
            assert rect.intersection(level) in (None, rect)
            assert rect.width <= 256 and rect.height <= 256


def test_output_aligned_chunks_form_a_regular_grid() -> None:
    grid = plan_tile_grid(Rect(-300, 100, 1500, 700), 1, (1000, 600), (256, 256), align="output")
    assert grid.chunks == ((256, 256, 188), (256,) * 5 + (220,))
