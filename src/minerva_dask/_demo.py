"""A deterministic, tissue-like multichannel pyramid for the demo, the tests and the benchmarks.

The picture: a slide of glass with irregular islands of tissue; in the tissue, cells laid
out as a jittered Voronoi tiling, each with a nucleus (DNA channel), a membrane outline
(membrane channel), cytoplasm positive for a marker in spatially clustered patches, and a
few immune cells with bright membranes. Autofluorescence, camera offset and noise on top,
so tiles compress like real data rather than like random bytes or flat colour.

Nothing here is a copy of any real image; the same seed always gives the same pixels.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .geometry import Rect
from .sources.base import ChannelInfo, ImageInfo, LevelInfo

__all__ = [
    "DEMO_CHANNELS",
    "demo_image_path",
    "pyramid_levels",
    "synthetic_tissue",
    "write_ome_tiff_pyramid",
    "write_ome_zarr_pyramid",
]

DEMO_CHANNELS = (
    "DNA",
    "Membrane",
    "Keratin",
    "CD8",
    "Autofluorescence",
    "Ki67",
    "Vimentin",
    "CD45",
)
DEMO_SIZE = (4096, 3072)  # width, height: not square, so x/y mix-ups show
DEMO_VERSION = 1
_CELL_SPACING = 24  # pixels between cell centres


def _smooth_field(rng: np.random.Generator, width: int, height: int, scale: int) -> np.ndarray:
    """Low-frequency noise in 0..1, (height, width): bilinear upsampling of a coarse grid."""
    gw, gh = width // scale + 2, height // scale + 2
    coarse = rng.random((gh, gw))
    ys = np.arange(height) / scale
    xs = np.arange(width) / scale
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def synthetic_tissue(
    width: int = DEMO_SIZE[0], height: int = DEMO_SIZE[1], channels: int = 4, seed: int = 0
) -> np.ndarray:
    """A ``(channels, height, width)`` uint16 tissue-like image. Deterministic in ``seed``.

    Channels cycle through DNA, membrane, keratin (cytoplasm), CD8 (sparse immune cells),
    then variations of them for more than four.
    """
    rng = np.random.default_rng(seed)
    spacing = _CELL_SPACING
    gw, gh = width // spacing + 3, height // spacing + 3
    seeds_x = ((np.arange(gw)[None, :] - 1 + rng.uniform(0.15, 0.85, (gh, gw))) * spacing).astype(
        np.float32
    )
    seeds_y = ((np.arange(gh)[:, None] - 1 + rng.uniform(0.15, 0.85, (gh, gw))) * spacing).astype(
        np.float32
    )
    nucleus_radius = rng.uniform(4.5, 8.0, (gh, gw))
    brightness = rng.uniform(0.5, 1.0, (gh, gw))
    cell_kind = rng.random((gh, gw))
    tissue = (
        _smooth_field(rng, width, height, 384) * 0.7 + _smooth_field(rng, width, height, 96) * 0.3
    )
    keratin_patch = _smooth_field(rng, width, height, 160)
    out = np.empty((channels, height, width), np.uint16)
    band = 256
    for y_start in range(0, height, band):
        y_stop = min(height, y_start + band)
        yy = np.arange(y_start, y_stop, dtype=np.float32)[:, None]
        xx = np.arange(width, dtype=np.float32)[None, :]
        gy, gx = (yy // spacing).astype(int) + 1, (xx // spacing).astype(int) + 1
        d1 = np.full((y_stop - y_start, width), np.inf, np.float32)
        d2 = d1.copy()
        owner = np.zeros(d1.shape, np.intp)  # flat index into the seed grid
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                flat = ((gy + dy) * gw + (gx + dx)).astype(np.intp)
                flat = np.broadcast_to(flat, d1.shape)
                dist = np.hypot(seeds_x.ravel()[flat] - xx, seeds_y.ravel()[flat] - yy)
                closer = dist < d1
                np.minimum(d2, dist, out=d2)
                np.copyto(d2, d1, where=closer)
                np.copyto(owner, flat, where=closer)
                np.copyto(d1, dist, where=closer)
        owner_y, owner_x = np.divmod(owner, gw)
        in_tissue = tissue[y_start:y_stop] > 0.5
        edge = np.clip((tissue[y_start:y_stop] - 0.5) * 20, 0, 1)
        radius = nucleus_radius[owner_y, owner_x]
        bright = brightness[owner_y, owner_x]
        kind = cell_kind[owner_y, owner_x]
        nucleus = np.clip((radius - d1) / 1.5, 0, 1) * bright * edge
        membrane = np.exp(-((d2 - d1) ** 2) / 2.0) * edge
        cytoplasm = ((d1 > radius) & (keratin_patch[y_start:y_stop] > 0.55)) * edge
        immune = (kind > 0.93) & in_tissue
        texture = 1.0 + 0.12 * rng.standard_normal(d1.shape, np.float32)
        signals = [
            nucleus * 30000 * texture,
            membrane * (6000 + 9000 * bright),
            cytoplasm * (4000 + 14000 * bright) * texture,
            membrane * immune * 40000 + (d1 < radius) * immune * 3000,
        ]
        for c in range(channels):
            base = signals[c % 4]
            if c >= 4:  # further channels: same structures, other subsets of cells
                base = base * (cell_kind[owner_y, owner_x] * 7 % 1 > (c % 4) / 5)
            glass = 180 + 40 * (c % 3)
            tissue_glow = 250 * edge * (1 + c % 2)
            noisy = base + glass + tissue_glow + 25 * rng.standard_normal(d1.shape, np.float32)
            out[c, y_start:y_stop] = np.clip(noisy, 0, 65535).astype(np.uint16)
    return out


def pyramid_levels(data: np.ndarray, min_side: int = 256) -> list[np.ndarray]:
    """Level 0 and 2x2-mean downsampled levels of ``(c, y, x)`` data down to ``min_side``.

    Odd sizes round down (the last row or column is dropped), as most writers do.
    """
    levels = [data]
    while min(levels[-1].shape[-2:]) // 2 >= min_side:
        prev = levels[-1]
        h, w = (prev.shape[-2] // 2) * 2, (prev.shape[-1] // 2) * 2
        p = prev[..., :h, :w].astype(np.uint32)
        mean = (
            p[..., 0::2, 0::2] + p[..., 1::2, 0::2] + p[..., 0::2, 1::2] + p[..., 1::2, 1::2] + 2
        ) // 4
        levels.append(mean.astype(data.dtype))
    return levels


def write_ome_tiff_pyramid(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    channel_names: tuple[str, ...] | None = None,
    tile: int = 512,
    compression: str | None = "zlib",
    pixel_size_um: float = 0.65,
    min_side: int = 256,
) -> Path:
    """Write ``(c, y, x)`` data as a tiled OME-TIFF with a SubIFD pyramid, atomically."""
    import tifffile

    from .writers._atomic import create_temp_beside

    path = Path(path)
    levels = pyramid_levels(data, min_side)
    names = list(channel_names or [f"Channel {i}" for i in range(data.shape[0])])
    fd, tmp = create_temp_beside(path)
    os.close(fd)
    try:
        options = {"tile": (tile, tile), "compression": compression, "photometric": "minisblack"}
        if compression == "zlib":
            options["compressionargs"] = {"level": 6}
        with tifffile.TiffWriter(tmp, ome=True, bigtiff=data.nbytes > 2**31) as tw:
            tw.write(
                levels[0],
                subifds=len(levels) - 1,
                metadata={
                    "axes": "CYX",
                    "Channel": {"Name": names[: data.shape[0]]},
                    "PhysicalSizeX": pixel_size_um,
                    "PhysicalSizeY": pixel_size_um,
                    "PhysicalSizeXUnit": "µm",
                    "PhysicalSizeYUnit": "µm",
                    "Name": path.name.split(".")[0],
                },
                **options,
            )
            for level in levels[1:]:
                tw.write(level, subfiletype=1, **options)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_ome_zarr_pyramid(
    path: str | os.PathLike[str],
    data: np.ndarray,
    *,
    channel_names: tuple[str, ...] | None = None,
    chunk: int = 256,
    version: str = "0.5",
    min_side: int = 64,
    scales: list[float] | None = None,
) -> Path:
    """Write ``(c, y, x)`` data as an OME-Zarr multiscale (NGFF 0.4 on zarr v2, 0.5 on v3)."""
    import zarr

    levels = pyramid_levels(data, min_side)
    names = list(channel_names or [f"Channel {i}" for i in range(data.shape[0])])
    zarr_format = 3 if version == "0.5" else 2
    root = zarr.open_group(str(path), mode="w", zarr_format=zarr_format)
    datasets = []
    for i, level in enumerate(levels):
        factor = scales[i] if scales else data.shape[-1] / level.shape[-1]
        arr = root.create_array(
            str(i), shape=level.shape, dtype=level.dtype, chunks=(1, chunk, chunk)
        )
        arr[...] = level
        datasets.append(
            {
                "path": str(i),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [1.0, 0.65 * factor, 0.65 * factor]}
                ],
            }
        )
    multiscales = [
        {
            "name": Path(path).name,
            "datasets": datasets,
            "axes": [
                {"name": "c", "type": "channel"},
                {"name": "y", "type": "space", "unit": "micrometer"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
        }
    ]
    colors = ["0000FF", "00FF00", "FF0000", "FF00FF", "00FFFF", "FFFF00", "FFFFFF"]
    omero = {
        "channels": [
            {
                "label": names[c],
                "color": colors[c % len(colors)],
                "active": True,
                "window": {"start": 0, "end": 30000, "min": 0, "max": 65535},
            }
            for c in range(data.shape[0])
        ]
    }
    if version == "0.5":
        root.attrs["ome"] = {"version": "0.5", "multiscales": multiscales, "omero": omero}
    else:
        multiscales[0]["version"] = "0.4"
        root.attrs["multiscales"] = multiscales
        root.attrs["omero"] = omero
    return Path(path)


def _cache_dir() -> Path:
    override = os.environ.get("MINERVA_DASK_CACHE")
    if override:
        return Path(override)
    import platformdirs

    return Path(platformdirs.user_cache_dir("minerva-dask"))


def demo_image_path(*, announce: Callable[[Path], None] | None = None) -> Path:
    """Path of the built-in demo image, generating it on first use (a few seconds).

    A 4096 x 3072, 4-channel uint16 pyramidal OME-TIFF (DNA, Membrane, Keratin, CD8) in
    the user cache directory (``$MINERVA_DASK_CACHE`` overrides the location).
    ``announce(folder)`` is called before generating it, never when it exists.
    """
    folder = _cache_dir()
    path = folder / f"demo-tissue-v{DEMO_VERSION}.ome.tif"
    if not path.exists():
        if announce is not None:
            announce(folder)
        folder.mkdir(parents=True, exist_ok=True)
        write_ome_tiff_pyramid(
            path, synthetic_tissue(*DEMO_SIZE, channels=4), channel_names=DEMO_CHANNELS[:4]
        )
    return path


#: The request the CLI renders when given nothing: all four demo channels, whole image.
DEMO_REQUEST = (
    "/0/0/0/?c=1|600:24000$0000FF,2|400:9000$00FF00,3|700:15000$FF0000,"
    "4|500:20000$FFFF00&region=0,0,4096,3072&max_size=2048"
)


class SyntheticSource:
    """A source that makes pixels instead of reading them: any size, no files, no I/O.

    A ``size_c``-channel uint16 pyramid of ``width`` x ``height`` with ``tile``-px tiles;
    pixel values are a function of level coordinates. For benchmarks and tests of the
    graph, kernel and writers in isolation from storage; it pickles for dask workers.
    """

    def __init__(
        self, width: int, height: int, size_c: int, tile: int = 1024, delay_s: float = 0.0
    ) -> None:
        self.shape = (width, height, size_c, tile)
        self.delay_s = delay_s  # per read: stands in for network latency
        levels, w, h, f = [], width, height, 1
        while True:
            levels.append(LevelInfo(w, h, tile, tile, (float(f), float(f))))
            if max(w, h) <= tile:
                break
            w, h, f = -(-w // 2), -(-h // 2), f * 2
        self.info = ImageInfo(
            name="synthetic",
            dtype=np.dtype("uint16"),
            size_c=size_c,
            size_z=1,
            size_t=1,
            levels=tuple(levels),
            channels=tuple(
                ChannelInfo(i, f"C{i}", (1.0, 1.0, 1.0), (0.0, 65535.0)) for i in range(size_c)
            ),
        )

    def __dask_tokenize__(self) -> tuple:
        return ("synthetic", *self.shape)

    def __repr__(self) -> str:
        return "SyntheticSource(width={}, height={}, size_c={}, tile={})".format(*self.shape)

    def read_region(
        self, level: int, rect: Rect, channels: Sequence[int], *, z: int = 0, t: int = 0
    ) -> np.ndarray:
        if self.delay_s:
            import time

            time.sleep(self.delay_s)
        y = np.arange(int(rect.y), int(rect.y + rect.height), dtype=np.uint32)[:, None]
        x = np.arange(int(rect.x), int(rect.x + rect.width), dtype=np.uint32)[None, :]
        base = ((x * 7 + y * 13) % 65536).astype(np.uint16)
        return np.stack([base + np.uint16(c * 997) for c in channels])

    def close(self) -> None:
        pass
