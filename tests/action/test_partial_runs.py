"""The action's ``stages`` and ``from-step`` inputs, through entrypoint.py against the fake cluster: the
stages left out are shown as skipped, and why, in the ``stages`` output and the job summary."""

from __future__ import annotations

import json
from pathlib import Path

from testing.action_runs import Runner
from testing.fake_k8s.cluster import FakeCluster

TWO_STAGE_SECRETS = {"secrets": "db-credentials: DB_PASSWORD, TLS_KEY"}
TWO_STAGE_ENV = {"DB_PASSWORD": "not-a-real-password", "TLS_KEY": "not-a-real-key"}


def test_from_step_reruns_the_service_and_reports_the_batch_stage_as_skipped(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    kubeconfig = {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text()}
    assert run_action(two_stage_workspace, {**kubeconfig, **TWO_STAGE_SECRETS}, TWO_STAGE_ENV).returncode == 0

    run = run_action(two_stage_workspace, {**kubeconfig, "from-step": "2"})

    assert run.returncode == 0, run.stdout + run.stderr
    stages = json.loads(run.outputs["stages"])
    assert [(s["stage"], s["status"], s["reason"]) for s in stages] == [
        ("train", "skipped", "before from-step 2"),
        ("serve", "succeeded", ""),
    ]
    assert "partial run (from-step 2)" in run.outputs["summary"]
    assert "⏭️ skipped (before from-step 2)" in run.summary
    assert len(fake_cluster.list("Job", "two-stage")) == 1, "train was not run again"


def test_a_bad_selection_is_invalid_input_naming_the_input(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    kubeconfig = {"kubeconfig": Path(fake_cluster.kubeconfig_path).read_text()}
    for inputs, message in [
        (
            {"stages": "trian"},
            "stages: 'trian' is not a stage of the DAG 'train >> serve'; did you mean 'train'?",
        ),
        ({"from-step": "3"}, "from-step 3: the DAG 'train >> serve' has 2 steps (1 to 2)"),
        ({"stages": "train", "from-step": "2"}, "stages and from-step can't be combined: choose one"),
        ({"from-step": "first"}, "input 'from-step' must be a whole number, found 'first'"),
    ]:
        run = run_action(two_stage_workspace, {**kubeconfig, **TWO_STAGE_SECRETS, **inputs}, TWO_STAGE_ENV)

        assert run.returncode == 2, run.stdout + run.stderr
        assert message in run.stdout + run.stderr and "Traceback" not in run.stdout + run.stderr
        assert run.outputs["status"] == "error"
    assert fake_cluster.list("Job", "two-stage") == []


def test_a_partial_plan_says_so_in_its_one_line_summary(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(two_stage_workspace, {"command": "plan", "stages": "serve"})

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["summary"] == "two-stage: plan of 2 stages in two-stage, partial run (stages serve)"
    assert "skipped, not selected (stages): train" in run.stdout
