"""The notebooks under notebooks/ run top to bottom; a failing cell fails the suite."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks() -> None:
    assert [p.stem for p in NOTEBOOKS] == [
        "01-quickstart",
        "02-omero",
        "03-whole-slide-on-a-cluster",
        "04-minerva",
        "05-figure",
        "06-deep-zoom",
    ]


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(path, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    # committed as run top to bottom, so a reader (on GitHub, say) sees its pictures
    assert [cell.get("execution_count") for cell in code] == list(range(1, len(code) + 1)), (
        "commit notebooks executed top to bottom (nbclient), outputs included"
    )
    shown = "".join(
        str(output.get("data", {})) for cell in code for output in cell.get("outputs", [])
    )
    assert "image/png" in shown or path.stem.startswith("03"), "a rendering shows its picture"
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    streams = "".join(
        output.get("text", "")
        for cell in notebook.cells
        for output in cell.get("outputs", [])
        if output.get("output_type") == "stream"
    )
    access_log = r'^.*"(?:GET|HEAD|PUT|POST|DELETE) /.* HTTP/1\.[01]" \d+.*$'
    access_logs = re.findall(access_log, streams, re.MULTILINE)
    assert not access_logs, f"servers' access logs in the output: {access_logs[:3]}"
