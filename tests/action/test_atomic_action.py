"""The action's `atomic` input, as GitHub runs the entrypoint, against the fake API server: a failed
deploy leaves the service at its previous revision and says so in the outputs and the job summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testing.action_runs import TWO_STAGE_YAML, Runner, encode_base64
from testing.fake_k8s.cluster import FakeCluster

NAME_LABEL = "app.kubernetes.io/name"
CHECK_STAGE = """\
  check:
    executable_module_path: check.py
    cpu_request: 0.25
    memory_request_mb: 100
    batch:
      max_completion_time_seconds: 60
      retries: 0
"""
NEW_SHA = "b" * 40


@pytest.fixture
def three_stage_workspace(tmp_path: Path) -> Path:
    """train >> serve >> check."""
    root = tmp_path / "three-stage"
    root.mkdir()
    config = TWO_STAGE_YAML.replace("DAG: train >> serve", "DAG: train >> serve >> check")
    config = config.replace("logging:\n", CHECK_STAGE + "logging:\n")
    (root / "bodywork.yaml").write_text(config)
    for module in ("train", "serve", "check"):
        (root / f"{module}.py").write_text(f"print('{module}')\n")
    return root


def test_atomic_input_rolls_the_service_back_and_the_outputs_and_summary_say_so(
    run_action: Runner, three_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    inputs = {
        "kubeconfig": encode_base64(Path(fake_cluster.kubeconfig_path).read_text()),
        "secrets": "db-credentials: DB_PASSWORD, TLS_KEY",
    }
    env = {"DB_PASSWORD": "atomic-canary-password-77", "TLS_KEY": "atomic-canary-key-78"}
    first = run_action(three_stage_workspace, inputs, env)
    assert first.returncode == 0, first.stdout + first.stderr
    before = fake_cluster.get("Deployment", "serve", "two-stage")
    assert before is not None
    fake_cluster.script("Job", {NAME_LABEL: "check"}, {"behavior": "fail"})

    run = run_action(three_stage_workspace, {**inputs, "atomic": "true"}, {**env, "GITHUB_SHA": NEW_SHA})

    assert run.returncode == 1, run.stdout + run.stderr
    outputs = run.outputs
    assert outputs["status"] == "failed"
    assert "left at their previous revision" in outputs["summary"]
    serve = next(s for s in json.loads(outputs["stages"]) if s["stage"] == "serve")
    assert (serve["status"], serve["rolled_back"], serve["rollback_error"]) == ("succeeded", True, "")
    assert "Rolled back \\(atomic\\): serve \\(previous revision\\)" in run.summary
    assert "-- serve: rolled back" in run.stdout
    live = fake_cluster.get("Deployment", "serve", "two-stage")
    assert live is not None and live["spec"]["template"] == before["spec"]["template"]
    assert NEW_SHA not in json.dumps(live["spec"])
    printed = [line for line in run.stdout.splitlines() if not line.startswith("::add-mask::")]
    assert "atomic-canary" not in "\n".join(printed) + run.summary + run.outputs_text


def test_an_atomic_input_that_is_not_a_boolean_is_one_clear_error(
    run_action: Runner, three_stage_workspace: Path
) -> None:
    run = run_action(three_stage_workspace, {"command": "validate", "atomic": "yes"})

    assert run.returncode == 2
    assert "atomic" in run.outputs["summary"] and "Traceback" not in run.stdout + run.stderr
