"""The README's set-up commands on a machine whose python3 is too old, or whose .venv is stale.

Each case runs the project's own Makefile with GNU make in a scratch copy, stopping before
anything is downloaded (the ``venv-check`` step runs first for every target).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import need

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent


def old_python(where: Path) -> Path:
    """An interpreter that says it is Python 3.10, as a user's python3.10 would."""
    script = where / "python3.10"
    script.write_text(
        "#!/bin/sh\n"
        'case "$1" in -V|--version) echo "Python 3.10.13"; exit 0;; esac\n'
        "exit 1\n"  # any program it is asked to run finds sys.version_info < (3, 11)
    )
    script.chmod(0o755)
    return script


@pytest.fixture
def project(tmp_path: Path) -> Path:
    need("make")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def make(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


@pytest.mark.parametrize("target", ["run", "test"])
def test_an_old_python_is_one_line_and_no_venv(project, target):
    result = make(project, target, f"PYTHON={old_python(project)}")
    assert result.returncode != 0
    assert result.stderr.count("\n") == 1, result.stderr
    assert "needs Python 3.11 or newer" in result.stderr
    assert "is Python 3.10.13" in result.stderr
    assert f"make {target} PYTHON=" in result.stderr
    assert not (project / ".venv").exists()


def test_a_missing_python_is_named(project):
    result = make(project, "run", "PYTHON=no-such-python3")
    assert result.returncode != 0
    assert "no-such-python3 is not a Python that runs here" in result.stderr
    assert not (project / ".venv").exists()


def fake_venv(project: Path, python: Path, made_with: str) -> Path:
    venv = project / ".venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to(python)
    (venv / ".made-with").write_text(made_with + "\n")
    return venv


def test_a_venv_made_by_an_old_python_is_made_again(project):
    venv = fake_venv(project, old_python(project), "/usr/bin/python3.10")
    result = make(project, "venv-check", f"PYTHON={sys.executable}")
    assert result.returncode == 0, result.stderr
    assert "older than 3.11; making it again" in result.stderr
    assert not venv.exists()


def test_a_good_venv_is_kept_and_a_named_python_replaces_it(project):
    venv = fake_venv(project, Path(sys.executable), "/somewhere/else/python3")
    kept = make(project, "venv-check")
    assert kept.returncode == 0 and kept.stderr == ""
    assert venv.exists()
    replaced = make(project, "venv-check", f"PYTHON={sys.executable}")
    assert replaced.returncode == 0
    assert "was made with /somewhere/else/python3; making it again" in replaced.stderr
    assert not venv.exists()
