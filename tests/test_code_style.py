"""The code is ruff-clean (lint rules and formatting, as configured in pyproject.toml) and the package
passes ``mypy --strict``."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    if importlib.util.find_spec(name) is None:
        message = f"{name} is not installed (pip install '.[test]' provides it)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs the test extra: a missing checker is a broken run
        pytest.skip(message)
    return subprocess.run(
        [sys.executable, "-m", name, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return tool("ruff", *args, cwd=cwd)


def test_ruff_reads_the_project_config_and_sees_the_code() -> None:
    """Guards the checks below against passing vacuously (no files found, fixtures not excluded)."""
    listed = ruff("check", "--no-cache", "--show-files", ".")
    assert listed.returncode == 0, listed.stdout + listed.stderr
    files = {Path(line.strip()).resolve() for line in listed.stdout.splitlines() if line.strip()}
    assert ROOT / "bodywork_action" / "kube" / "deploy.py" in files
    assert ROOT / "tests" / "deploy" / "conftest.py" in files
    assert not any((ROOT / "tests" / "data") in f.parents for f in files), "fixtures are kept as shipped"


def test_ruff_lint_is_clean() -> None:
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_does_flag_bad_code(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import os\nx=1\n")
    assert ruff("check", "--no-cache", "--isolated", ".", cwd=tmp_path).returncode != 0
    assert ruff("format", "--no-cache", "--isolated", "--check", ".", cwd=tmp_path).returncode != 0


def test_the_package_passes_mypy_strict() -> None:
    result = tool("mypy", "--strict", "--no-incremental", "bodywork_action")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues found in" in result.stdout


def test_mypy_strict_does_flag_untyped_code(tmp_path: Path) -> None:
    (tmp_path / "untyped.py").write_text("def f(x):\n    return x\n")
    result = tool("mypy", "--strict", "--no-incremental", "untyped.py", cwd=tmp_path)
    assert result.returncode != 0 and "untyped.py:1: error" in result.stdout
