"""The shipped MLflow example comes up locally with its trivial configuration and answers ``/health``.

``--reuse-env``: the test environment already has mlflow (the ``test`` extra), so the ~850 MB venv of the
stage's requirements is not built here; what is under test is the local runner bringing the real server up,
not pip. The venv path has its own tests (``test_local_venv.py``).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import urllib.request
from dataclasses import replace
from pathlib import Path

import pytest

from bodywork_action.config import load_pipeline
from bodywork_action.local.runner import run_local, stop_local
from bodywork_action.model import ServiceSettings
from bodywork_action.results import DeploymentStatus
from testing.local_runs import free_port, is_gone

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_mlflow_example_comes_up_locally_and_answers_health(tmp_path: Path) -> None:
    # A copy, so mlflow.db and mlartifacts/ land in tmp_path rather than the repository.
    for name in ("bodywork.yaml", "mlflow_server.py"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    pipeline = load_pipeline(tmp_path / "bodywork.yaml", check_files=True)
    server = pipeline.stages["server"]
    assert isinstance(server.settings, ServiceSettings)
    port = free_port()
    pipeline = replace(
        pipeline, stages={"server": replace(server, settings=replace(server.settings, port=port))}
    )
    # Listen on 127.0.0.1 only (the script's default host is a pod's 0.0.0.0).
    environ = {**os.environ, "MLFLOW_HOST": "127.0.0.1"}
    out = io.StringIO()

    result = run_local(
        pipeline,
        tmp_path / "bodywork.yaml",
        reuse_env=True,
        smoke_tests={"server": "/health"},
        detach=True,
        environ=environ,
        out=out,
    )
    print(out.getvalue())  # shown by pytest when the test fails

    try:
        assert result.status is DeploymentStatus.SUCCEEDED, out.getvalue()
        assert result.stage("server").url == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=30) as response:
            assert response.status == 200
        assert (tmp_path / "mlflow.db").exists()
        # The example names secrets that a first local run does not supply: a warning, not an error.
        assert (
            "--secret mlflow-config=MLFLOW_BACKEND_STORE_URI,MLFLOW_DEFAULT_ARTIFACT_ROOT" in out.getvalue()
        )
    finally:
        services = json.loads((tmp_path / ".bodywork" / "services.json").read_text())["services"]
        assert stop_local(tmp_path, out=io.StringIO()) == 0
    assert is_gone(services[0]["pid"])
