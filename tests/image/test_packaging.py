"""What a user checks first: the sdist (built as a release builds it) and the LICENSE it carries."""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path

import tomllib
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def test_the_sdist_carries_the_license_and_package_and_no_tests(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "build", "--sdist", "--outdir", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sdist,) = tmp_path.glob("*.tar.gz")
    with tarfile.open(sdist) as archive:
        names = [name.split("/", 1)[1] for name in archive.getnames() if "/" in name]
        top = sdist.name.removesuffix(".tar.gz")
        pkg_info = archive.extractfile(f"{top}/PKG-INFO").read().decode()
        license_text = archive.extractfile(f"{top}/LICENSE").read()
    assert [name for name in names if name.startswith(("tests/", "testing/"))] == []
    assert "bodywork_action/cli.py" in names and "bodywork_action/action.py" in names
    assert license_text == (ROOT / "LICENSE").read_bytes()
    assert re.search(r"^License-Expression: Apache-2.0$", pkg_info, re.MULTILINE)
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = pkg_info.splitlines()
    required = [line.split(": ", 1)[1] for line in lines if line.startswith("Requires-Dist: ")]
    assert sorted(str(Requirement(r)) for r in required if "extra ==" not in r) == sorted(
        str(Requirement(d)) for d in declared
    )


def test_the_license_is_the_apache_2_0_text() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:5] == ["Apache", "License", "Version", "2.0,", "January"]
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert 'license = "Apache-2.0"' in (ROOT / "pyproject.toml").read_text()
