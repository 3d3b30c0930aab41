"""``./run``: the demo installs the package alone; the test extra is added for ``./run test``.

The environment is a stub (its ``python`` logs pip's arguments instead of installing, its
``minerva-dask`` logs the crop), so the stamp logic is checked without a network."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).parents[1] / "run"


@pytest.fixture
def stub_env(tmp_path):
    if shutil.which("bash") is None:
        pytest.skip("bash not found")
    venv, log = tmp_path / "venv", tmp_path / "log"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1 $2" = "-m pip" ]; then echo "pip $*" >> {log}; exit 0; fi\n'
        f'exec {sys.executable} "$@"\n'
    )
    tool = venv / "bin" / "minerva-dask"
    tool.write_text(f'#!/usr/bin/env bash\necho "minerva-dask $*" >> {log}\n')
    for path in (python, tool):
        path.chmod(0o755)
    env = {**os.environ, "MINERVA_DASK_VENV": str(venv)}

    def run(*args: str) -> list[str]:
        before = log.read_text().splitlines() if log.exists() else []
        result = subprocess.run(
            ["bash", str(RUN), *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == 0, result.stderr
        after = log.read_text().splitlines() if log.exists() else []
        return after[len(before) :]

    return run


@pytest.mark.slow
def test_demo_installs_the_package_alone_and_test_adds_the_extra(stub_env) -> None:
    assert stub_env("demo", "-q") == [
        "pip -m pip install -qq --disable-pip-version-check -e .",
        "minerva-dask crop -q",
    ]
    assert stub_env("demo") == ["minerva-dask crop"]  # up to date: nothing installed
    assert stub_env("shell", "true") == [  # ./run test and ./run shell need the test extra
        "pip -m pip install -qq --disable-pip-version-check -e .[test]"
    ]
    assert stub_env("shell", "true") == []
    assert stub_env("demo") == ["minerva-dask crop"]  # the test extra holds the package


def test_the_demo_in_an_environment_made_for_the_tests_installs_nothing(stub_env) -> None:
    assert stub_env("shell", "true") == [
        "pip -m pip install -qq --disable-pip-version-check -e .[test]"
    ]
    assert stub_env("demo") == ["minerva-dask crop"]


@pytest.mark.slow
def test_run_test_prints_its_wall_time_and_keeps_pytests_exit_status(tmp_path) -> None:
    if shutil.which("bash") is None:
        pytest.skip("bash not found")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name, body in [("python", f'exec {sys.executable} "$@"'), ("ruff", "exit 0")]:
        (venv / "bin" / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (venv / "bin" / name).chmod(0o755)
    (venv / ".installed-test").touch()  # up to date: nothing to install
    env = {**os.environ, "MINERVA_DASK_VENV": str(venv)}
    for args, code in [(["--version"], 0), (["--no-such-option"], 4)]:
        result = subprocess.run(
            ["bash", str(RUN), "test", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert result.returncode == code, result.stderr
        assert re.search(r"run: test took \d+ s of wall time", result.stderr), result.stderr
