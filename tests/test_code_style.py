"""The code is ruff-clean: lint rules and formatting, as configured in pyproject.toml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("ruff")
    if executable is None:
        pytest.skip("ruff is not installed (pip install '.[test]' provides it)")
    return subprocess.run(
        [executable, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def test_ruff_lint_is_clean() -> None:
    result = ruff("check", "--no-cache", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = ruff("format", "--no-cache", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_does_flag_bad_code(tmp_path: Path) -> None:
    """Guards the checks above against passing vacuously (no files found, config not read)."""
    (tmp_path / "bad.py").write_text("import os\nx=1\n")
    assert ruff("check", "--no-cache", "--isolated", ".", cwd=tmp_path).returncode != 0
    assert ruff("format", "--no-cache", "--isolated", "--check", ".", cwd=tmp_path).returncode != 0
