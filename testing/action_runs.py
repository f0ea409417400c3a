"""Running entrypoint.py as GitHub runs a container action, against the fake API server.

A subprocess with a minimal environment (PATH, HOME), ``INPUT_*`` variables with hyphens kept,
GITHUB_OUTPUT / GITHUB_STEP_SUMMARY pointing at temp files and the workspace as the working directory.
The fixtures (``workspace``, ``two_stage_workspace``, ``run_action``) are imported by the conftest.py of
each folder that uses them.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from testing.builders import COMMIT, MLFLOW_SECRETS
from testing.github_files import parse_output_file

REPO_ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = REPO_ROOT / "entrypoint.py"
SHA = COMMIT
OUTPUT_NAMES = (
    "status", "namespace", "stages", "service-urls", "service-url", "mlflow-url", "summary", "changes",
)  # fmt: skip
# The action's ``secrets`` input for the MLflow example, and what the step's env holds (canaries).
MLFLOW_SECRETS_INPUT = "\n".join(f"{name}: {', '.join(keys)}" for name, keys in MLFLOW_SECRETS.items())
MLFLOW_SECRET_ENV = {
    "MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow:pw-canary-1@db.example:5432/mlflow",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT": "s3://bucket/mlflow",
    "AWS_ACCESS_KEY_ID": "AKIACANARY0000000001",
    "AWS_SECRET_ACCESS_KEY": "aws-secret-canary-0000000000000000000000",
    "AWS_DEFAULT_REGION": "eu-west-2",
}

# A batch stage then a service stage; the namespace is the pipeline name.
TWO_STAGE_YAML = """\
version: "1.1"
pipeline:
  name: two-stage
  docker_image: python:3.11-slim
  DAG: train >> serve
  secrets_group: test
stages:
  train:
    executable_module_path: train.py
    cpu_request: 0.25
    memory_request_mb: 100
    secrets:
      DB_PASSWORD: db-credentials
      TLS_KEY: db-credentials
    batch:
      max_completion_time_seconds: 60
      retries: 0
  serve:
    executable_module_path: serve.py
    cpu_request: 0.25
    memory_request_mb: 100
    service:
      max_startup_time_seconds: 60
      replicas: 1
      port: 8000
      ingress: false
logging:
  log_level: INFO
"""


@dataclass(frozen=True)
class ActionRun:
    """What one run of the entrypoint left behind."""

    returncode: int
    stdout: str
    stderr: str
    outputs_text: str
    summary: str

    @property
    def outputs(self) -> dict[str, str]:
        return parse_output_file(self.outputs_text)

    def annotations(self, kind: str = "error") -> list[str]:
        return [line for line in self.stdout.splitlines() if line.startswith(f"::{kind} ")]


def encode_base64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


Runner = Callable[..., ActionRun]


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A checkout holding the repository's MLflow example."""
    root = tmp_path / "workspace"
    root.mkdir()
    for name in ("bodywork.yaml", "mlflow_server.py"):
        shutil.copy(REPO_ROOT / name, root / name)
    return root


@pytest.fixture
def two_stage_workspace(tmp_path: Path) -> Path:
    root = tmp_path / "two-stage"
    root.mkdir()
    (root / "bodywork.yaml").write_text(TWO_STAGE_YAML)
    (root / "train.py").write_text("print('training')\n")
    (root / "serve.py").write_text("print('serving')\n")
    return root


@pytest.fixture
def run_action(tmp_path: Path) -> Runner:
    """Run entrypoint.py in ``workspace`` with ``inputs`` (action input names) and extra ``env``."""
    counter = iter(range(1000))

    def run(workspace: Path, inputs: Mapping[str, str], env: Mapping[str, str] | None = None) -> ActionRun:
        files = tmp_path / f"run-{next(counter)}"
        files.mkdir()
        output_path, summary_path, runner_temp = files / "output", files / "summary", files / "temp"
        output_path.touch()
        summary_path.touch()
        runner_temp.mkdir()
        environ = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(files),
            "GITHUB_ACTIONS": "true",
            "GITHUB_OUTPUT": str(output_path),
            "GITHUB_STEP_SUMMARY": str(summary_path),
            "GITHUB_WORKSPACE": str(workspace),
            "GITHUB_SHA": SHA,
            "GITHUB_REPOSITORY": "owner/repo",
            "GITHUB_SERVER_URL": "https://github.com",
            "GITHUB_RUN_ID": "4242",
            "GITHUB_RUN_ATTEMPT": "1",
            "RUNNER_TEMP": str(runner_temp),
        }
        environ.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
        environ.update(env or {})
        completed = subprocess.run(
            [sys.executable, str(ENTRYPOINT)],
            env=environ,
            cwd=workspace,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return ActionRun(
            returncode=completed.returncode,
            stdout=completed.stdout,
            stderr=completed.stderr,
            outputs_text=output_path.read_text(),
            summary=summary_path.read_text(),
        )

    return run
