"""The package's data files (the JSON Schemas of bodywork.yaml and of --format json) are declared as
package data, so the wheel, the sdist and the action's image (the Dockerfile pip-installs the project)
all carry them. The image tests build it; this checks the declaration without building anything."""

from __future__ import annotations

import fnmatch
import json
from importlib import resources
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "bodywork_action"


def data_files() -> list[Path]:
    return sorted(
        path
        for path in PACKAGE.rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    )


def test_every_data_file_of_the_package_is_declared_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    declared = patterns["bodywork_action"]
    names = [path.relative_to(PACKAGE).as_posix() for path in data_files()]
    assert {"bodywork.schema.json", "result.schema.json"} <= set(names)
    assert [name for name in names if not any(fnmatch.fnmatch(name, p) for p in declared)] == []


def test_the_schemas_are_read_as_package_resources() -> None:
    for name in ("bodywork.schema.json", "result.schema.json"):
        schema = json.loads(resources.files("bodywork_action").joinpath(name).read_text(encoding="utf-8"))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
