"""An independent, straightforward renderer used as the oracle in tests.

It reads a whole level with tifffile or zarr directly (not through minerva_dask's sources),
slices and pads the region with plain numpy, and composites with the formula of
rendering.md section 4 written out literally. Slow and memory-hungry on purpose: obvious.
"""

from __future__ import annotations

import math

import numpy as np
import tifffile
import zarr


def read_tiff_level(path: str, level: int) -> tuple[np.ndarray, str]:
    """The whole level as an array plus tifffile's axes string."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.levels[level].asarray(), series.axes


def read_zarr_level(path: str, level: int) -> np.ndarray:
    group = zarr.open_group(path, mode="r")
    attrs = dict(group.attrs)
    ms = (attrs.get("ome") or attrs)["multiscales"][0]
    return np.asarray(group[ms["datasets"][level]["path"]][...])


def level_for(downsamples, w, h, max_size):
    """Finest level with max(w/fx, h/fy) <= max_size, else the coarsest (rendering.md 2)."""
    for level, (fx, fy) in enumerate(downsamples):
        if max(w / fx, h / fy) <= max_size:
            return level
    return len(downsamples) - 1


def reduction_for(downsample, w, h, max_size):
    """Smallest integer k with max(w, h) / (f k) <= max_size at the level (1 if it fits)."""
    fx, fy = downsample
    k = 1
    while max(w / (fx * k), h / (fy * k)) > max_size * (1 + 1e-12):
        k += 1
    return k


def block_mean_level(cyx: np.ndarray, k: int) -> np.ndarray:
    """Means of the k x k blocks of (c, y, x) data, partial edge blocks averaging what
    exists; integers rounded half up, the obvious way: pad, reshape, sum, divide."""
    if k == 1:
        return cyx
    c, height, width = cyx.shape
    vh, vw = -(-height // k), -(-width // k)
    padded = np.zeros((c, vh * k, vw * k), np.float64 if cyx.dtype.kind == "f" else object)
    padded[:, :height, :width] = cyx
    ones = np.zeros((vh * k, vw * k), np.int64)
    ones[:height, :width] = 1
    sums = padded.reshape(c, vh, k, vw, k).sum(axis=(2, 4))
    counts = ones.reshape(vh, k, vw, k).sum(axis=(1, 3))
    if cyx.dtype.kind == "f":
        return (sums / counts).astype(cyx.dtype)
    return ((2 * sums + counts) // (2 * counts)).astype(cyx.dtype)


def crop_padded(cyx: np.ndarray, x: int, y: int, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """Region [x, x+w) x [y, y+h) of (c, y, x) data, zero padded; plus an 'inside' mask."""
    c, height, width = cyx.shape
    out = np.zeros((c, h, w), cyx.dtype)
    inside = np.zeros((h, w), bool)
    for j in range(h):
        yy = y + j
        if not 0 <= yy < height:
            continue
        x0, x1 = max(x, 0), min(x + w, width)
        if x1 > x0:
            out[:, j, x0 - x : x1 - x] = cyx[:, yy, x0:x1]
            inside[j, x0 - x : x1 - x] = True
    return out, inside


def composite_linear(planes, windows, colors, gamma=1.0, inverted=None):
    """rendering.md 4, default: float32, n = clip((x-s)/(e-s)), additive, round."""
    acc = np.zeros((*planes.shape[1:], 3), np.float32)
    inverted = inverted or [False] * len(planes)
    for plane, (s, e), rgb, inv in zip(planes, windows, colors, inverted, strict=True):
        if e > s:
            n = np.clip((plane.astype(np.float32) - np.float32(s)) / np.float32(e - s), 0, 1)
        else:
            n = (plane >= e).astype(np.float32)
        if inv:
            n = np.float32(1) - n
        for k in range(3):
            acc[..., k] += n * np.float32(rgb[k])
    acc = np.clip(acc, 0, 1)
    if gamma != 1:
        acc = acc ** np.float32(1 / gamma)
    return np.rint(acc * np.float32(255)).astype(np.uint8)


def render_reference(
    level_cyx,
    downsample,
    region,
    windows,
    colors,
    *,
    background=(0, 0, 0),
    gamma=1.0,
    inverted=None,
):
    """Render a full-resolution region from one level's whole (c, y, x) array."""
    fx, fy = downsample
    x, y, w, h = region
    lx, ly = math.floor(x / fx + 1e-9), math.floor(y / fy + 1e-9)
    lw, lh = max(1, math.floor(w / fx + 1e-9)), max(1, math.floor(h / fy + 1e-9))
    planes, inside = crop_padded(level_cyx, lx, ly, lw, lh)
    rgb = composite_linear(planes, windows, colors, gamma, inverted)
    rgb[~inside] = background
    return rgb


def independent_pyramid(path, z=0, t=0):
    """Every level of a TIFF or OME-Zarr as (c, y, x) plus (fx, fy) factors, read directly.

    TIFF factors are level-0 size over level size; OME-Zarr factors come from the
    multiscales scale transforms (level scale over level-0 scale), else from shapes.
    """
    path = str(path)
    if path.rstrip("/").endswith(".zarr"):
        group = zarr.open_group(path, mode="r")
        attrs = dict(group.attrs)
        if "bioformats2raw.layout" in attrs:
            group = group["0"]
            attrs = dict(group.attrs)
        ms = (attrs.get("ome") or attrs)["multiscales"][0]
        arrays = [np.asarray(group[d["path"]][...]) for d in ms["datasets"]]
        axes = "".join(a["name"] if isinstance(a, dict) else a for a in ms.get("axes", [])).upper()
        axes = axes or {3: "CYX", 5: "TCZYX"}[arrays[0].ndim]
        scales = [
            next(
                (
                    tr["scale"]
                    for tr in d.get("coordinateTransformations", [])
                    if tr["type"] == "scale"
                ),
                None,
            )
            for d in ms["datasets"]
        ]
    else:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            arrays = [level.asarray() for level in series.levels]
            axes = series.axes.upper()
        scales = [None] * len(arrays)
    if axes.endswith("YXS") and arrays[0].shape[-1] > 4:  # misdeclared samples: planes
        axes = axes[:-3] + "CYX"
    axes = axes.replace("S", "C").replace("I", "C")
    levels = []
    for array in arrays:
        index = tuple({"Z": z, "T": t}.get(a, slice(None)) for a in axes)
        kept = [a for a in axes if a not in "ZT"]
        cyx = array[index]
        if "C" not in kept:
            cyx, kept = cyx[np.newaxis], ["C", *kept]
        levels.append(np.transpose(cyx, [kept.index(a) for a in "CYX"]))
    x_dim, y_dim = axes.index("X"), axes.index("Y")
    downsamples = []
    for array, scale in zip(arrays, scales, strict=True):
        if scale and scales[0]:
            downsamples.append((scale[x_dim] / scales[0][x_dim], scale[y_dim] / scales[0][y_dim]))
        else:
            downsamples.append(
                (
                    arrays[0].shape[x_dim] / array.shape[x_dim],
                    arrays[0].shape[y_dim] / array.shape[y_dim],
                )
            )
    return levels, downsamples


def expected_levels(rgb: np.ndarray, count: int) -> list[np.ndarray]:
    """``rgb`` ``(y, x, 3)`` and its 2 x 2 means, ``count`` levels in all, computed here,
    independently of the writers (odd edges repeated, rounded half up)."""
    levels = [rgb]
    for _ in range(count - 1):
        prev = levels[-1].astype(np.int32)
        h, w = prev.shape[:2]
        prev = np.pad(prev, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        quad = prev[0::2, 0::2] + prev[1::2, 0::2] + prev[0::2, 1::2] + prev[1::2, 1::2]
        levels.append(((quad + 2) // 4).astype(np.uint8))
    return levels
