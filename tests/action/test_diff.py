"""entrypoint.py with ``command: diff`` against the fake cluster: outputs, job summary, no secret value."""

from __future__ import annotations

from pathlib import Path

from testing.action_runs import (
    MLFLOW_SECRET_ENV,
    MLFLOW_SECRETS_INPUT,
    OUTPUT_NAMES,
    Runner,
    encode_base64,
)
from testing.fake_k8s.cluster import FakeCluster


def inputs(fake: FakeCluster, **more: str) -> dict[str, str]:
    kubeconfig = encode_base64(Path(fake.kubeconfig_path).read_text())
    return {"kubeconfig": kubeconfig, "secrets": MLFLOW_SECRETS_INPUT, **more}


def test_after_a_deploy_the_diff_shows_no_change(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    deployed = run_action(workspace, inputs(fake_cluster), MLFLOW_SECRET_ENV)
    assert deployed.returncode == 0, deployed.stdout

    run = run_action(workspace, inputs(fake_cluster, command="diff"), MLFLOW_SECRET_ENV)

    assert run.returncode == 0, run.stdout + run.stderr
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert run.outputs["status"] == "unchanged"
    assert run.outputs["changes"] == "0"
    assert (
        run.outputs["summary"]
        == "bodywork-mlflow in bodywork-mlflow: 0 created, 0 changed, 0 deleted, 4 unchanged"
    )
    assert run.summary.startswith(
        "## Bodywork diff: bodywork-mlflow\n\n**0 created · 0 changed · 0 deleted · 4 unchanged**"
    )
    assert "```diff" not in run.summary  # no diff to show; the secrets' keys, each unchanged
    assert "| `AWS_SECRET_ACCESS_KEY` | unchanged |" in run.summary


def test_a_rotated_secret_and_a_changed_cpu_request_are_in_the_summary_without_any_value(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    assert run_action(workspace, inputs(fake_cluster), MLFLOW_SECRET_ENV).returncode == 0
    config = workspace / "bodywork.yaml"
    config.write_text(config.read_text().replace("cpu_request: 0.5", "cpu_request: 1", 1))
    rotated = {**MLFLOW_SECRET_ENV, "AWS_SECRET_ACCESS_KEY": "aws-secret-rotated-canary-000000000000000"}

    run = run_action(workspace, inputs(fake_cluster, command="diff"), rotated)

    assert run.returncode == 0, run.stdout + run.stderr
    assert (run.outputs["status"], run.outputs["changes"]) == ("changed", "2")
    summary = run.summary
    assert summary.index("**0 created · 2 changed · 0 deleted · 2 unchanged**") < summary.index("<details>")
    assert "<summary>Secret/aws-credentials: changed</summary>" in summary
    assert (
        "| `AWS_SECRET_ACCESS_KEY` | changed |" in summary
        and "| `AWS_ACCESS_KEY_ID` | unchanged |" in summary
    )
    assert (
        "<summary>Deployment/server (stage server): changed, a deploy restarts its pods</summary>" in summary
    )
    assert "-            cpu: 500m\n+            cpu: '1'\n" in summary
    assert (
        summary.count("<details>") == summary.count("</details>") == 3
    )  # 2 changed, the unchanged Secret's keys
    log = "\n".join(line for line in run.stdout.splitlines() if not line.startswith("::add-mask::"))
    everything = log + run.stderr + run.outputs_text + summary
    for value in [*MLFLOW_SECRET_ENV.values(), *rotated.values()]:
        for line in value.splitlines():
            assert line not in everything


def test_with_no_cluster_reachable_the_diff_is_an_error_with_every_output(
    run_action: Runner, workspace: Path
) -> None:
    kubeconfig = (
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: c, cluster: {server: 'http://127.0.0.1:9'}}]\n"
        "contexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {token: t}}]\n"
    )
    run = run_action(
        workspace,
        {"kubeconfig": kubeconfig, "command": "diff", "secrets": MLFLOW_SECRETS_INPUT},
        MLFLOW_SECRET_ENV,
    )

    assert run.returncode == 2
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert (run.outputs["status"], run.outputs["changes"]) == ("error", "")
    assert len(run.annotations("error")) == 1 and "Traceback" not in run.stdout + run.stderr
