"""entrypoint.py deploying against the fake cluster: outputs, summary and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from testing.action_runs import (
    MLFLOW_SECRET_ENV,
    MLFLOW_SECRETS_INPUT,
    OUTPUT_NAMES,
    TWO_STAGE_YAML,
    ActionRun,
    Runner,
    encode_base64,
)
from testing.fake_k8s import Scenario
from testing.fake_k8s.cluster import FakeCluster

NAME_LABEL = "app.kubernetes.io/name"
MLFLOW_URL = "http://server.bodywork-mlflow.svc.cluster.local:5000"
TWO_STAGE_SECRETS = {"secrets": "db-credentials: DB_PASSWORD, TLS_KEY"}
TWO_STAGE_ENV = {"DB_PASSWORD": "not-a-real-password", "TLS_KEY": "not-a-real-key"}


def kubeconfig_text(fake: FakeCluster) -> str:
    return Path(fake.kubeconfig_path).read_text()


def deploy_mlflow(run_action: Runner, workspace: Path, kubeconfig: str) -> ActionRun:
    inputs = {"kubeconfig": kubeconfig, "secrets": MLFLOW_SECRETS_INPUT}
    return run_action(workspace, inputs, MLFLOW_SECRET_ENV)


def test_success_writes_every_output_and_the_summary(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = deploy_mlflow(run_action, workspace, encode_base64(kubeconfig_text(fake_cluster)))

    assert run.returncode == 0, run.stdout + run.stderr
    outputs = run.outputs
    assert set(outputs) == set(OUTPUT_NAMES)
    assert outputs["status"] == "succeeded"
    assert outputs["namespace"] == "bodywork-mlflow"
    assert outputs["service-url"] == MLFLOW_URL
    assert outputs["mlflow-url"] == MLFLOW_URL
    assert json.loads(outputs["service-urls"]) == {"server": MLFLOW_URL}
    stages = json.loads(outputs["stages"])
    assert [(s["stage"], s["type"], s["status"], s["url"]) for s in stages] == [
        ("server", "service", "succeeded", MLFLOW_URL)
    ]
    assert "succeeded" in outputs["summary"] and "\n" not in outputs["summary"]

    assert "Bodywork deployment of `bodywork-mlflow` succeeded" in run.summary
    assert "```mermaid" in run.summary
    assert MLFLOW_URL in run.summary
    assert "https://github.com/owner/repo/commit/" in run.summary
    # The deployment is really there, in the pipeline's namespace, with both secrets.
    assert fake_cluster.get("Deployment", "server", "bodywork-mlflow") is not None
    assert fake_cluster.get("Service", "server", "bodywork-mlflow") is not None
    secret_names = {s["metadata"]["name"] for s in fake_cluster.list("Secret", "bodywork-mlflow")}
    assert {"mlflow-config", "aws-credentials"} <= secret_names
    # One foldable group per DAG step.
    assert "::group::" in run.stdout and "::endgroup::" in run.stdout


def test_plain_and_base64_kubeconfig_both_work(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster
) -> None:
    plain = deploy_mlflow(run_action, workspace, kubeconfig_text(fake_cluster))
    encoded = deploy_mlflow(run_action, workspace, encode_base64(kubeconfig_text(fake_cluster)))

    for run in (plain, encoded):
        assert run.returncode == 0, run.stdout + run.stderr
        assert run.outputs["status"] == "succeeded"
        assert run.outputs["mlflow-url"] == MLFLOW_URL


def test_a_failed_batch_stage_exits_1_and_the_summary_explains(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script(
        "Job",
        {NAME_LABEL: "train"},
        Scenario(behavior="fail", logs=["loading features", "ValueError: no rows in table features"]),
    )

    run = run_action(
        two_stage_workspace, {"kubeconfig": kubeconfig_text(fake_cluster), **TWO_STAGE_SECRETS}, TWO_STAGE_ENV
    )

    assert run.returncode == 1, run.stdout + run.stderr
    outputs = run.outputs
    assert set(outputs) == set(OUTPUT_NAMES)
    assert outputs["status"] == "failed"
    assert outputs["namespace"] == "two-stage"
    assert outputs["service-url"] == "" and outputs["mlflow-url"] == ""
    assert json.loads(outputs["service-urls"]) == {}
    statuses = {s["stage"]: (s["status"], s["reason"]) for s in json.loads(outputs["stages"])}
    assert statuses == {"train": ("failed", "BackoffLimitExceeded"), "serve": ("skipped", "")}
    assert "train" in outputs["summary"] and "BackoffLimitExceeded" in outputs["summary"]
    # The service after the failed step never started.
    assert fake_cluster.get("Deployment", "serve", "two-stage") is None

    assert "failed" in run.summary.splitlines()[0]
    details = run.summary[run.summary.index("<details>") :]
    assert "<code>train</code>" in details
    assert "BackoffLimitExceeded" in details
    assert "loading features" in details
    assert "ValueError: no rows in table features" in details
    assert details.index("</details>") > details.index("ValueError: no rows in table features")
    assert [line for line in run.annotations() if "bodywork deploy failed" in line]


def test_an_invalid_bodywork_yaml_exits_2_with_annotations_and_every_output(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    (two_stage_workspace / "bodywork.yaml").write_text(
        TWO_STAGE_YAML.replace("DAG: train >> serve", "DAG: train >> nowhere").replace(
            "cpu_request: 0.25", "cpu_request: lots", 1
        )
    )

    run = run_action(two_stage_workspace, {"kubeconfig": kubeconfig_text(fake_cluster)})

    assert run.returncode == 2, run.stdout + run.stderr
    errors = run.annotations()
    lines = TWO_STAGE_YAML.splitlines()
    dag_line = next(i for i, line in enumerate(lines, 1) if "DAG:" in line)
    cpu_line = next(i for i, line in enumerate(lines, 1) if "cpu_request" in line)
    dag_prefix, cpu_prefix = (f"::error file=bodywork.yaml,line={n}," for n in (dag_line, cpu_line))
    assert any(a.startswith(dag_prefix) and "nowhere" in a for a in errors)
    assert any(a.startswith(cpu_prefix) and "cpu_request" in a for a in errors)
    assert "Traceback" not in run.stderr
    outputs = run.outputs
    assert set(outputs) == set(OUTPUT_NAMES)
    assert outputs["status"] == "invalid"
    assert all(outputs[name] == "" for name in ("stages", "service-urls", "service-url", "mlflow-url"))
    assert "invalid" in outputs["summary"]
    assert "is invalid" in run.summary and "nowhere" in run.summary
    assert fake_cluster.requests.count(verb="create") == 0


def test_a_secret_env_var_that_is_not_set_exits_2_naming_it_and_creates_nothing(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(
        two_stage_workspace,
        {"kubeconfig": kubeconfig_text(fake_cluster), **TWO_STAGE_SECRETS},
        {"DB_PASSWORD": "not-a-real-password"},  # TLS_KEY is listed but missing
    )

    assert run.returncode == 2, run.stdout + run.stderr
    assert "TLS_KEY" in run.stdout
    assert any("TLS_KEY" in line for line in run.annotations())
    assert "Traceback" not in run.stderr
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert run.outputs["status"] not in ("", "succeeded")
    assert "TLS\\_KEY" in run.summary  # Markdown-escaped
    assert fake_cluster.requests.count(verb="create") == 0
    assert fake_cluster.list("Secret", "two-stage") == []
