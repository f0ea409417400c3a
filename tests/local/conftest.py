"""Fixtures for the local runner's tests: a copy of the test pipeline per test (testing/local_runs.py)."""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.local_runs import PIPELINE_DIR, Project


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    shutil.copytree(PIPELINE_DIR, root, ignore=shutil.ignore_patterns("__pycache__", ".bodywork"))
    out_dir = tmp_path / "out"
    yield Project(
        root=root,
        out_dir=out_dir,
        cache_dir=tmp_path / "cache",
        environ={**os.environ, "BW_TEST_OUT": str(out_dir)},
    )
    # A test that failed half-way may have left a detached service: stop it.
    from bodywork_action.local.runner import stop_local

    stop_local(root, out=io.StringIO())
