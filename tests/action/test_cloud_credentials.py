"""Cloud kubeconfigs (an ``exec:`` credential plugin) through entrypoint.py, against the fake API server.

A plugin that is not installed is refused before anything connects, naming the recipe that works; an
installed one runs with none of the step's secret values in its environment; what a failing plugin
prints reaches the log redacted; a kubeconfig given through KUBECONFIG is masked like the input.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import yaml

from testing.action_runs import MLFLOW_SECRET_ENV, MLFLOW_SECRETS_INPUT, Runner
from testing.fake_k8s.cluster import FakeCluster


def with_exec_user(fake: FakeCluster, command: str) -> str:
    """The fake's kubeconfig with its user's token replaced by an exec credential plugin."""
    document = yaml.safe_load(Path(fake.kubeconfig_path).read_text())
    document["users"][0]["user"] = {
        "exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": command}
    }
    return yaml.safe_dump(document)


def write_plugin(directory: Path, name: str, body: str) -> Path:
    plugin = directory / name
    plugin.write_text("#!/usr/bin/env python3\nimport json, os, sys\n" + body)
    plugin.chmod(plugin.stat().st_mode | stat.S_IXUSR)
    return plugin


def test_a_plugin_that_is_not_installed_is_refused_before_connecting(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    empty = tmp_path / "empty-path"  # as in the action's image: no cloud CLI at all
    empty.mkdir()
    inputs = {"kubeconfig": with_exec_user(fake_cluster, "aws"), "secrets": MLFLOW_SECRETS_INPUT}
    run = run_action(workspace, inputs, {**MLFLOW_SECRET_ENV, "PATH": str(empty)})

    assert run.returncode == 2, run.stdout + run.stderr
    (annotation,) = run.annotations()
    assert "'aws', which is not installed here" in annotation and "aws eks get-token" in annotation
    assert run.outputs["status"] == "error"
    assert fake_cluster.requests.count() == 0  # nothing was even asked of the cluster


def test_an_installed_plugin_runs_without_the_step_s_secrets(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    seen = tmp_path / "plugin-environment.json"
    write_plugin(
        bin_dir,
        "cloud-auth",
        f"json.dump(dict(os.environ), open({str(seen)!r}, 'w'))\n"
        "print(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1beta1', "
        f"'kind': 'ExecCredential', 'status': {{'token': {fake_cluster.token!r}}}}}))\n",
    )
    inputs = {"kubeconfig": with_exec_user(fake_cluster, "cloud-auth"), "secrets": MLFLOW_SECRETS_INPUT}
    run = run_action(workspace, inputs, {**MLFLOW_SECRET_ENV, "PATH": f"{bin_dir}:/usr/bin:/bin"})

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "succeeded"
    environment = json.loads(seen.read_text())
    assert not set(MLFLOW_SECRET_ENV) & set(environment)
    assert "INPUT_KUBECONFIG" not in environment
    assert not any(value in json.dumps(environment) for value in MLFLOW_SECRET_ENV.values())


def test_what_a_failing_plugin_prints_is_redacted(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    leaked = MLFLOW_SECRET_ENV["MLFLOW_BACKEND_STORE_URI"]
    # A plugin that echoes a value it was given some other way (its own config, say) and fails.
    write_plugin(
        bin_dir, "cloud-auth", f"print('login failed for ' + {leaked!r}, file=sys.stderr)\nsys.exit(1)\n"
    )
    inputs = {"kubeconfig": with_exec_user(fake_cluster, "cloud-auth"), "secrets": MLFLOW_SECRETS_INPUT}
    run = run_action(workspace, inputs, {**MLFLOW_SECRET_ENV, "PATH": f"{bin_dir}:/usr/bin:/bin"})

    assert run.returncode != 0
    assert "login failed for ***" in run.stderr
    log_lines = [line for line in run.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert leaked not in "\n".join(log_lines) + run.stderr + run.outputs_text + run.summary


def test_a_kubeconfig_from_the_kubeconfig_variable_is_used_and_masked(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    env = {**MLFLOW_SECRET_ENV, "KUBECONFIG": str(fake_cluster.kubeconfig_path)}
    run = run_action(workspace, {"secrets": MLFLOW_SECRETS_INPUT}, env)

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"::add-mask::{fake_cluster.token}" in run.stdout.splitlines()
    assert run.outputs["status"] == "succeeded"


def test_a_kubeconfig_path_of_the_host_is_found_in_the_mounted_workspace(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    # get-gke-credentials writes gha-kubeconfig-* into the workspace and exports the host's path.
    (workspace / "gha-kubeconfig-abc123").write_text(Path(fake_cluster.kubeconfig_path).read_text())
    host_path = "/home/runner/work/project/project/gha-kubeconfig-abc123"
    run = run_action(
        workspace, {"secrets": MLFLOW_SECRETS_INPUT}, {**MLFLOW_SECRET_ENV, "KUBECONFIG": host_path}
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert f"::add-mask::{fake_cluster.token}" in run.stdout.splitlines()


def test_a_kubeconfig_path_the_step_cannot_see_is_one_clear_error(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    env = {**MLFLOW_SECRET_ENV, "KUBECONFIG": "/home/runner/.kube/elsewhere"}
    run = run_action(workspace, {"secrets": MLFLOW_SECRETS_INPUT}, env)

    assert run.returncode == 2
    (annotation,) = run.annotations()
    assert "which this step cannot see" in annotation and "kubeconfig input" in annotation
