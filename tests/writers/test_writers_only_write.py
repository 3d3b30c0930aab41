"""Writers only write: whoever runs their tasks is handed to them (a ``Runner``, see
:mod:`minerva_dask.writers._runner`); none picks a scheduler, a pool or a client itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import minerva_dask

WRITERS = Path(minerva_dask.__file__).parent / "writers"
SCHEDULING_MODULES = ("dask.threaded", "dask.local", "distributed", "concurrent.futures")
SCHEDULING_NAMES = {("dask.base", "get_scheduler"), ("dask", "compute"), ("dask", "persist")}
SCHEDULING_CALLS = {"compute", "persist", "gather", "get_scheduler"}
# The PNG encoder deflates bands on threads of its own: writing, not running tasks.
ENCODER_THREADS = {
    "png.py": {("concurrent.futures", "Future"), ("concurrent.futures", "ThreadPoolExecutor")}
}


def _imports(tree: ast.AST) -> set[tuple[str, str]]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name, "") for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {(node.module, alias.name) for alias in node.names}
    return found


def _calls(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                ours = isinstance(func.value, ast.Name) and func.value.id == "runner"
                if not ours:  # the runner handed in may persist and compute
                    found.add(func.attr)
            elif isinstance(func, ast.Name):
                found.add(func.id)
    return found


@pytest.mark.parametrize("path", sorted(WRITERS.glob("*.py")), ids=lambda p: p.name)
def test_no_writer_schedules_its_own_work(path: Path) -> None:
    tree = ast.parse(path.read_text(), str(path))
    imports = _imports(tree) - ENCODER_THREADS.get(path.name, set())
    scheduling = sorted(
        f"{module}{'.' + name if name else ''}"
        for module, name in imports
        if module.startswith(SCHEDULING_MODULES) or (module, name) in SCHEDULING_NAMES
    )
    assert not scheduling, f"{path.name} imports {scheduling}"
    calls = sorted(_calls(tree) & SCHEDULING_CALLS)
    assert not calls, f"{path.name} calls {calls}"
    client = sorted(
        node.value.id + "." + node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "client"
    )
    assert not client, f"{path.name} uses a dask client: {client}"
