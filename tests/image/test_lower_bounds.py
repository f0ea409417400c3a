"""pyproject's kubernetes lower bound is the first release that has what the code calls.

A virtual environment over this one gets exactly ``kubernetes==<lower bound>`` (then the release just
before it), and the action deploys the MLflow example against the fake API server with each: the bound
must work and the release before it must not (36.0.3's ApiClient has no ``param_serialize``). When the
code stops needing 37, the second half fails and says to lower the bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from testing.action_runs import MLFLOW_SECRET_ENV, MLFLOW_SECRETS_INPUT, SHA
from testing.fake_k8s.cluster import FakeCluster

ROOT = Path(__file__).resolve().parents[2]
DECLARED = {
    Requirement(text).name: Requirement(text)
    for text in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
}
RELEASE_BEFORE_THE_BOUND = "36.0.3"


def lower_bound(name: str) -> str:
    (spec,) = [s for s in DECLARED[name].specifier if s.operator == ">="]
    return spec.version


def deploy_with(version: str, tmp_path: Path, fake: FakeCluster) -> subprocess.CompletedProcess[str]:
    venv = tmp_path / f"venv-{version}"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", f"kubernetes=={version}"],
        check=True,
        timeout=300,
    )
    installed = subprocess.run(
        [python, "-c", "import kubernetes; print(kubernetes.__version__)"], capture_output=True, text=True
    )
    assert Version(installed.stdout.strip()) == Version(version)
    workspace = tmp_path / f"ws-{version}"
    workspace.mkdir()
    for name in ("bodywork.yaml", "mlflow_server.py"):
        (workspace / name).write_bytes((ROOT / name).read_bytes())
    output, summary = tmp_path / f"output-{version}", tmp_path / f"summary-{version}"
    output.touch()
    summary.touch()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "GITHUB_ACTIONS": "true",
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_SHA": SHA,
        "GITHUB_REPOSITORY": "owner/repo",
        "GITHUB_SERVER_URL": "https://github.com",
        "INPUT_KUBECONFIG": Path(fake.kubeconfig_path).read_text(),
        "INPUT_SECRETS": MLFLOW_SECRETS_INPUT,
        **MLFLOW_SECRET_ENV,
    }
    command = [python, str(ROOT / "entrypoint.py")]
    return subprocess.run(command, env=env, cwd=workspace, capture_output=True, text=True, timeout=120)


def test_the_kubernetes_lower_bound_deploys(tmp_path: Path, fake_cluster: FakeCluster) -> None:
    done = deploy_with(lower_bound("kubernetes"), tmp_path, fake_cluster)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_release_before_the_bound_does_not(tmp_path: Path, fake_cluster: FakeCluster) -> None:
    if Requirement(f"kubernetes>={lower_bound('kubernetes')}").specifier.contains(RELEASE_BEFORE_THE_BOUND):
        pytest.fail(f"update RELEASE_BEFORE_THE_BOUND: {RELEASE_BEFORE_THE_BOUND} is inside the bound")
    done = deploy_with(RELEASE_BEFORE_THE_BOUND, tmp_path, fake_cluster)
    # An internal error from the client's missing API (exit 3, AttributeError), not any other failure.
    assert done.returncode == 3, f"kubernetes {RELEASE_BEFORE_THE_BOUND}: lower the bound?\n{done.stdout}"
    assert "AttributeError" in done.stdout
