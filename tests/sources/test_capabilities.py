"""What a source can do is declared (``SourceBase``) and read in one place
(``capabilities``), never probed attribute by attribute."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import minerva_dask as md
from minerva_dask.sources.base import (
    SourceBase,
    capabilities,
    channels_per_read,
    read_level,
    server_rendered,
    tile_mode,
)
from tests.sources.npy_tiles import NpyTileSource

CAPABILITIES = (
    "tile_mode",
    "server_preset",
    "io_concurrency",
    "ref",
    "projects",
    "reads_windowed",
    "channels_per_read",
)


def test_a_source_with_only_the_core_protocol_has_the_defaults(tmp_path) -> None:
    plain = NpyTileSource(tmp_path)  # info, read_region, close: nothing declared
    assert isinstance(plain, md.sources.Source)
    declared = capabilities(plain)
    assert (tile_mode(plain), server_rendered(plain)) == ("raw", False)
    assert (declared.io_concurrency, declared.ref, declared.server_preset) == (None, None, None)
    assert channels_per_read(plain, 0) is None


def test_capabilities_are_declared_by_inheriting_not_guessed_from_attributes(tmp_path) -> None:
    class LooksRendered(NpyTileSource):  # an attribute of that name declares nothing
        tile_mode = "composite"

    class Rendered(SourceBase):
        tile_mode = "composite"
        server_preset = "omero"

    assert not server_rendered(LooksRendered(tmp_path))
    assert server_rendered(Rendered()) and tile_mode(Rendered()) == "composite"


def test_raw_reads_of_a_server_rendered_source_are_refused_before_any_read() -> None:
    class Rendered(SourceBase):  # no info, no read_region: nothing may be touched
        tile_mode = "windowed"

    with pytest.raises(md.SourceError, match="not raw pixel values"):
        read_level(Rendered(), 0)


def test_a_composite_source_must_name_its_maths() -> None:
    class Unnamed(SourceBase):
        tile_mode = "composite"

    with pytest.raises(ValueError, match="names no server_preset"):
        tile_mode(Unnamed())


def test_the_defaults_of_server_reads_refuse_clearly() -> None:
    with pytest.raises(md.SourceError, match="does not render composites"):
        SourceBase().read_composite(0, md.Rect(0, 0, 1, 1), [])
    with pytest.raises(md.SourceError, match="does not window channels"):
        SourceBase().read_windowed(0, md.Rect(0, 0, 1, 1), [])


def test_file_sources_declare_where_their_pixels_come_from(tiny_ome_tiff, tiny_ome_zarr):
    for path in (tiny_ome_tiff, tiny_ome_zarr):
        source = md.open_image(path)
        assert capabilities(source).ref == str(path)
        assert not server_rendered(source)
        assert source.read_region(0, md.Rect(0, 0, 2, 2), [0]).dtype == source.info.dtype


def test_no_module_probes_a_source_for_a_capability() -> None:
    src = Path(md.__file__).parent
    names = "|".join((*CAPABILITIES, "check_styles", "read_windowed", "read_composite"))
    probe = re.compile(rf"""(?:getattr|hasattr)\([^)]*["']({names})["']""")
    found = [
        f"{path.relative_to(src)}:{n}: {line.strip()}"
        for path in sorted(src.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if probe.search(line)
    ]
    assert found == []
