"""examples/workflows/preview-environments.yml, as far as it runs here: its deploy and delete steps'
inputs (the namespace expression, the pull request's commit) evaluated for a pull request and handed
to entrypoint.py as GitHub would, against the fake API server; its summary step run with bash."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from testing.action_runs import MLFLOW_SECRET_ENV, REPO_ROOT, SHA, Runner
from testing.fake_k8s.cluster import FakeCluster
from testing.workflow_steps import find_step, load_workflow, step_env, step_inputs

WORKFLOW = load_workflow(REPO_ROOT / "examples" / "workflows" / "preview-environments.yml")
PIPELINE = "bodywork-mlflow"  # pipeline.name of the repository's bodywork.yaml


def pull_request_context(fake: FakeCluster, number: int, action: str) -> dict[str, Any]:
    """What GitHub puts in the expressions for a `pull_request` event from this repository."""
    return {
        "github": {
            "repository": "owner/repo",
            "event": {
                "action": action,
                "pull_request": {
                    "number": number,
                    "head": {"sha": SHA, "repo": {"full_name": "owner/repo"}},
                },
            },
        },
        "env": WORKFLOW["env"],
        "secrets": {"KUBECONFIG": Path(fake.kubeconfig_path).read_text(), **MLFLOW_SECRET_ENV},
    }


def deploy_preview(run_action: Runner, workspace: Path, fake: FakeCluster, number: int) -> Any:
    step = find_step(WORKFLOW, "deploy", "deploy")
    context = pull_request_context(fake, number, "synchronize")
    return run_action(workspace, step_inputs(step, context), step_env(step, context))


def test_each_pull_request_gets_its_namespace_and_closing_it_deletes_only_that_one(
    run_action: Runner, workspace: Path, fake_cluster: FakeCluster, tmp_path: Path
) -> None:
    first = deploy_preview(run_action, workspace, fake_cluster, 42)
    other = deploy_preview(run_action, workspace, fake_cluster, 43)

    assert first.returncode == 0, first.stdout + first.stderr
    assert other.returncode == 0, other.stdout + other.stderr
    assert first.outputs["status"] == "succeeded"
    assert first.outputs["namespace"] == f"{PIPELINE}-pr-42"
    assert first.outputs["service-url"] == f"http://server.{PIPELINE}-pr-42.svc.cluster.local:5000"
    assert fake_cluster.get("Deployment", "server", f"{PIPELINE}-pr-42") is not None
    assert fake_cluster.get("Deployment", "server", f"{PIPELINE}-pr-43") is not None
    deployment = fake_cluster.get("Deployment", "server", f"{PIPELINE}-pr-42")
    assert deployment["metadata"]["annotations"]["bodywork.dev/commit"] == SHA  # the head commit

    summary_file = tmp_path / "step-summary.md"
    summary_step = find_step(WORKFLOW, "deploy", name="Put the preview's address in the job summary")
    outputs = {"steps": {"deploy": {"outputs": first.outputs}}}
    shown = subprocess.run(
        ["bash", "-e", "-c", summary_step["run"]],
        env={
            "PATH": "/usr/bin:/bin",
            "GITHUB_STEP_SUMMARY": str(summary_file),
            **step_env(summary_step, outputs),
        },
        check=False,
    )
    assert shown.returncode == 0
    summary = summary_file.read_text()
    assert f"`{PIPELINE}-pr-42` (succeeded)" in summary
    assert f"In-cluster URL: http://server.{PIPELINE}-pr-42.svc.cluster.local:5000" in summary

    delete_step = find_step(WORKFLOW, "delete", "delete")
    closed = pull_request_context(fake_cluster, 42, "closed")
    deleted = run_action(workspace, step_inputs(delete_step, closed), step_env(delete_step, closed))

    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert deleted.outputs["status"] == "deleted"
    assert deleted.outputs["namespace"] == f"{PIPELINE}-pr-42"
    assert fake_cluster.get("Namespace", f"{PIPELINE}-pr-42") is None
    assert fake_cluster.get("Deployment", "server", f"{PIPELINE}-pr-43") is not None  # another PR's stays


def test_the_jobs_run_on_the_events_they_are_for_and_never_for_forks() -> None:
    jobs = WORKFLOW["jobs"]
    same_repository = "github.event.pull_request.head.repo.full_name == github.repository"

    # PyYAML reads the `on:` key as YAML 1.1 does: the boolean true.
    assert WORKFLOW[True] == {"pull_request": {"types": ["opened", "synchronize", "reopened", "closed"]}}
    assert jobs["deploy"]["if"] == f"github.event.action != 'closed' && {same_repository}"
    assert jobs["delete"]["if"] == f"github.event.action == 'closed' && {same_repository}"
    assert jobs["fork"]["if"] == same_repository.replace("==", "!=")
    assert jobs["deploy"]["concurrency"]["cancel-in-progress"] is True
    assert jobs["delete"]["concurrency"]["cancel-in-progress"] is False
    assert jobs["delete"]["concurrency"]["group"] != jobs["deploy"]["concurrency"]["group"]
    assert jobs["comment"]["permissions"] == {"pull-requests": "write"}
    assert all(
        job["permissions"] in ({}, {"contents": "read"}) for name, job in jobs.items() if name != "comment"
    )
