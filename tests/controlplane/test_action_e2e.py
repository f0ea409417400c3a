"""entrypoint.py, run as GitHub runs the container action, against the real control plane; checked
with the real kubectl.

Proves, beyond tests/action (fake API server): the real apiserver accepts everything the action
sends, including server-side dry runs (admission and validation run for real), the Deployment of
the MLflow example becomes available through the real controllers, secret values stay masked end
to end, and `delete` leaves nothing behind. As everywhere on this tier, no container runs (kwok).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from testing.action_runs import (  # noqa: F401  (fixtures)
    MLFLOW_SECRET_ENV,
    MLFLOW_SECRETS_INPUT,
    OUTPUT_NAMES,
    Runner,
    run_action,
    workspace,
)
from testing.cluster.launcher import ControlPlane

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

MASK = "::add-mask::"


def kubectl(control_plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    executable = shutil.which("kubectl")
    if executable is None:
        pytest.skip("kubectl is not installed")
    return subprocess.run(
        [executable, f"--kubeconfig={control_plane.kubeconfig_path}", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def kubectl_json(control_plane: ControlPlane, *args: str) -> Any:
    done = kubectl(control_plane, *args, "-o", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_dry_run_deploy_and_delete_of_the_mlflow_example(
    run_action: Runner,  # noqa: F811
    workspace: Path,  # noqa: F811
    control_plane: ControlPlane,
) -> None:
    namespace = f"mlflow-{uuid.uuid4().hex[:8]}"
    inputs = {
        "kubeconfig": control_plane.kubeconfig_path.read_text(),
        "secrets": MLFLOW_SECRETS_INPUT,
        "namespace": namespace,
    }

    dry = run_action(workspace, {**inputs, "command": "dry-run"}, MLFLOW_SECRET_ENV)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.outputs["status"] == "succeeded"
    assert "dry run: nothing was created" in dry.stdout
    assert kubectl(control_plane, "get", "namespace", namespace).returncode != 0, "dry run created it"

    deployed = run_action(workspace, inputs, MLFLOW_SECRET_ENV)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    assert set(deployed.outputs) == set(OUTPUT_NAMES)
    url = f"http://server.{namespace}.svc.cluster.local:5000"
    assert (deployed.outputs["status"], deployed.outputs["namespace"]) == ("succeeded", namespace)
    assert deployed.outputs["mlflow-url"] == url and url in deployed.summary
    assert "bodywork-mlflow: succeeded in" in deployed.stdout
    deployment = kubectl_json(control_plane, "get", "deployment", "server", "-n", namespace)
    assert deployment["status"]["availableReplicas"] == deployment["spec"]["replicas"] == 1
    assert deployment["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "bodywork-action"
    secret = kubectl_json(control_plane, "get", "secret", "mlflow-config", "-n", namespace)
    assert set(secret["data"]) == {"MLFLOW_BACKEND_STORE_URI", "MLFLOW_DEFAULT_ARTIFACT_ROOT"}
    for run in (dry, deployed):
        others = "\n".join(line for line in run.stdout.splitlines() if not line.startswith(MASK))
        for value in MLFLOW_SECRET_ENV.values():
            for line in value.splitlines():  # each line of a multi-line value, not only the whole
                if len(line) >= 8:  # short values (a region name) are not masked by GitHub either
                    assert line not in others + run.stderr + run.outputs_text + run.summary

    # Now that the namespace exists, a dry run has the real apiserver check every object.
    again = run_action(workspace, {**inputs, "command": "dry-run"}, MLFLOW_SECRET_ENV)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "not checked" not in again.stdout + again.summary

    deleted = run_action(workspace, {**inputs, "command": "delete"})
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert deleted.outputs["status"] == "deleted"
    left = kubectl(control_plane, "get", "deployments,services,jobs,secrets", "-n", namespace, "-o", "name")
    assert left.returncode == 0, left.stderr  # a terminating namespace still lists (nothing)
    assert "deployment.apps/server" not in left.stdout and "secret/mlflow-config" not in left.stdout
