"""The data behind a figure: the shown channels of a request's region, unrendered.

:func:`raw_region` plans the request exactly as a render does (the same level choice,
on-the-fly reduction, budgets and output-aligned chunks, :func:`minerva_dask.plan_render`)
and gives a :class:`RawRegion`: a lazy dask array ``(c, y, x)`` in the source's dtype, one
plane per shown channel at the chosen level, plane ``z`` and time ``t`` (or the request's
z projection, :mod:`minerva_dask.projection`), with the channels' names, colours and
windows from the request and the physical pixel size scaled by the level. Pixels outside
the image are 0. The writers store it as OME-Zarr (NGFF ``omero`` block: labels, colours,
windows) or OME-TIFF (OME-XML Channel Name and Color), so viewers open it looking like
the figure.

Only sources whose tiles are raw pixel values can be exported raw: files (local, HTTP,
S3) and Minerva's raw 16-bit tiles. OMERO.web sends rendered 8-bit tiles only (its
webgateway has no raw-pixel tile endpoint; raw tiles need Glencoe's omero-ms-pixel-buffer,
which minerva-dask does not read), and Minerva's render-tile mode likewise: both are
refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .colors import color_hex
from .errors import RequestError
from .plan import MAX_PIXELS, MAX_READ_PIXELS, Planned, RenderPlan, plan_render
from .request import RenderRequest
from .sources.base import ImageInfo, capabilities, tile_mode

if TYPE_CHECKING:
    import dask.array as da

__all__ = ["RawChannel", "RawRegion", "ome_color", "raw_region"]


def ome_color(hex_rgb: str, alpha: int = 255) -> int:
    """OME-XML's ``Color``: RGBA packed into a signed 32-bit integer.

    >>> ome_color("FF0000"), ome_color("0000FF"), ome_color("FFFFFF")
    (-16776961, 65535, -1)
    """
    value = (int(hex_rgb, 16) << 8) | alpha
    return value - (1 << 32) if value >= 1 << 31 else value


@dataclass(frozen=True, slots=True)
class RawChannel:
    """One exported plane: the image's channel ``index`` (0-based), its name, the
    request's colour (``RRGGBB``) and window ``(start, end)`` in raw values."""

    index: int
    name: str
    color: str
    window: tuple[float, float]


@dataclass(frozen=True)
class RawRegion(Planned):
    """A lazy unrendered region: ``data`` is ``(c, y, x)`` in the source dtype, chunked
    on a regular grid from the region's origin (what the writers store)."""

    data: da.Array = field(repr=False)
    channels: tuple[RawChannel, ...]
    plan: RenderPlan
    request: RenderRequest
    image: ImageInfo
    source: Any = field(default=None, repr=False, compare=False)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)``."""
        return tuple(self.data.shape)  # type: ignore[return-value]

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def inputs(self) -> tuple[str, ...]:
        """Where the pixels come from (a path or URL): never overwritten by an output."""
        ref = capabilities(self.source).ref
        return (ref,) if isinstance(ref, str) else ()

    def compute(self, **kwargs: Any) -> Any:
        """The region as a numpy ``(c, y, x)`` array."""
        from .compute import compute_options

        return self.data.compute(**compute_options(self.source, kwargs))

    def provenance(self) -> dict[str, Any]:
        """What was exported, for the output's metadata."""
        plan = self.plan
        out: dict[str, Any] = {
            "software": "minerva-dask",
            "image": self.image.name,
            "request": self.request.to_url(),
            "raw": True,
            "level": plan.level,
            "downsample": list(plan.downsample),
            "dtype": str(self.data.dtype),
            "z": plan.z,
            "t": plan.t,
        }
        if plan.projection is not None:
            out["projection"] = plan.projection.to_param()
        if plan.reduction > 1:
            k = plan.reduction
            out["reduction"] = f"mean of each {k} x {k} block, rounded to the dtype"
        return out


def raw_region(
    source: Any,
    request: RenderRequest,
    *,
    level: int | None = None,
    level_rule: str = "general",
    chunk_size: int | tuple[int, int] | None = None,
    align: str = "output",
    max_pixels: int = MAX_PIXELS,
    max_read_pixels: int = MAX_READ_PIXELS,
) -> RawRegion:
    """The shown channels of ``request``'s region from ``source``, unrendered and lazy.

    Planned as :func:`minerva_dask.render` plans it (same level, size and budgets);
    ``align="output"`` (default) cuts chunks on a regular grid from the output's origin.

    >>> import minerva_dask as md
    >>> src = md.open_image(md.demo_image_path())
    >>> req = md.parse_request("/0/0/0/?c=1,3&region=0,0,4096,3072&max_size=1024")
    >>> region = md.raw_region(src, req)
    >>> region.shape, str(region.dtype), region.level, [c.name for c in region.channels]
    ((2, 768, 1024), 'uint16', 2, ['DNA', 'Keratin'])
    """
    from .chunks import level_array

    mode = tile_mode(source)
    if mode != "raw":
        raise RequestError(
            f"{source!r} sends rendered 8-bit tiles, not the image's pixel values, so it "
            "cannot be exported raw (OMERO.web has no raw-tile endpoint; Minerva: use mode "
            "raw); export the rendered figure instead (drop --raw), or export from the file"
        )
    plan = plan_render(
        source.info,
        request,
        level=level,
        level_rule=level_rule,
        chunk_size=chunk_size,
        align=align,
        max_pixels=max_pixels,
        max_read_pixels=max_read_pixels,
    )
    info = source.info
    channels = tuple(
        RawChannel(
            index=style.index,
            name=info.channels[style.index].name,
            color=color_hex(style.color),
            window=(style.start, style.end),
        )
        for style in plan.channels
    )
    return RawRegion(
        data=level_array(source, plan, "raw"),
        channels=channels,
        plan=plan,
        request=request,
        image=info,
        source=source,
    )
