"""The README's Python examples say what the code does: run as written on the demo image."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import minerva_dask as md

README = (Path(__file__).parents[1] / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def _block(start: str) -> str:
    return next(block for block in BLOCKS if block.startswith(start))


def test_to_url_prints_what_the_readme_shows() -> None:
    block = _block("req = md.RenderRequest(")
    *code, last = block.strip().splitlines()
    call, _, comment = last.partition("#")
    shown = re.search(r"'([^']*)'", comment).group(1)
    namespace = {"md": md}
    exec("\n".join(code), namespace)  # the README's own lines
    assert eval(call, namespace) == shown  # the README's own call


@pytest.mark.slow
def test_the_readme_crop_example_runs(demo_path, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace = {"md": md, "src": md.open_image(demo_path)}
    exec(_block("req = md.RenderRequest("), namespace)
    block = _block("result = md.crop(").replace('"slide.ome.tif"', repr(str(demo_path)))
    exec(block, namespace)  # the README's own lines
    result = namespace["result"]
    assert result.path.endswith("figure.png") and result.shape == (1024, 1024)
    assert (tmp_path / "overview.ome.tif").stat().st_size > 0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        ("md.crop(image, req)", md.RequestError, "looks like an image, not a request"),
        ("md.crop(image, 'x.png')", md.RequestError, "looks like an image, not a request"),
        ("md.crop(pathlib.Path(image), 'x.png')", md.RequestError, "looks like an image"),
        ("md.crop(md.open_image(image), 'x.png')", md.RequestError, "request, not the image"),
        ("md.crop(req, req, image=image)", md.OutputError, "output must be a file name"),
        ("md.crop(req, 'x.png')", md.RequestError, "no image given"),
    ],
)
def test_crop_called_the_wrong_way_says_so(demo_path, tmp_path, call, error, message) -> None:
    import pathlib

    namespace = {
        "md": md,
        "pathlib": pathlib,
        "image": str(demo_path),
        "req": md.parse_request("/0/0/0/?c=1|0:30000$0000FF&region=0,0,512,512"),
    }
    with pytest.raises(error, match=message) as caught:
        eval(call, namespace)
    assert "crop(request, output, image=" in str(caught.value)
    assert not list(tmp_path.iterdir())
