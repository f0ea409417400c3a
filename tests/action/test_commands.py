"""`command:` validate, plan, dry-run and delete, each run through entrypoint.py."""

from __future__ import annotations

from pathlib import Path

from testing.action_runs import OUTPUT_NAMES, Runner
from testing.fake_k8s.cluster import FakeCluster

SECRETS = {"secrets": "db-credentials: DB_PASSWORD, TLS_KEY"}
SECRET_ENV = {"DB_PASSWORD": "not-a-real-password", "TLS_KEY": "not-a-real-key"}
KINDS = ("Job", "Deployment", "Service", "Secret")


def kubeconfig_text(fake: FakeCluster) -> str:
    return Path(fake.kubeconfig_path).read_text()


def pipeline_objects(fake: FakeCluster) -> dict[str, list[str]]:
    return {kind: sorted(o["metadata"]["name"] for o in fake.list(kind, "two-stage")) for kind in KINDS}


def test_validate_needs_no_kubeconfig(run_action: Runner, two_stage_workspace: Path) -> None:
    run = run_action(two_stage_workspace, {"command": "validate"})

    assert run.returncode == 0, run.stdout + run.stderr
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert run.outputs["status"] == "valid"
    assert run.outputs["namespace"] == "two-stage"
    assert run.outputs["service-url"] == ""
    assert run.annotations() == []


def test_plan_prints_the_objects_and_creates_nothing(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(
        two_stage_workspace, {"command": "plan", "kubeconfig": kubeconfig_text(fake_cluster), **SECRETS}
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert run.outputs["status"] == "planned"
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert "kind: Job" in run.stdout and "kind: Deployment" in run.stdout and "kind: Service" in run.stdout
    assert "train" in run.stdout and "serve" in run.stdout
    assert fake_cluster.requests.count(verb="create") == 0
    assert fake_cluster.get("Namespace", "two-stage") is None


def test_dry_run_creates_nothing(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(
        two_stage_workspace,
        {"command": "dry-run", "kubeconfig": kubeconfig_text(fake_cluster), **SECRETS},
        SECRET_ENV,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert run.outputs["status"] == "succeeded"
    assert fake_cluster.get("Namespace", "two-stage") is None
    assert pipeline_objects(fake_cluster) == {kind: [] for kind in KINDS}
    assert "dry run: nothing was created" in run.stdout  # said in the log, not only in the summary
    assert "two-stage: dry run succeeded in" in run.stdout and "stages succeeded" not in run.stdout
    assert "Bodywork dry run of `two-stage` succeeded" in run.summary
    # Whatever was sent as a create was sent as a server-side dry run.
    for request in fake_cluster.requests.filter(verb="create"):
        assert "dryRun=All" in request.query, request


def test_delete_after_a_deploy_removes_the_pipeline(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    inputs = {"kubeconfig": kubeconfig_text(fake_cluster), **SECRETS}
    deployed = run_action(two_stage_workspace, inputs, SECRET_ENV)
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    before = pipeline_objects(fake_cluster)
    assert before["Deployment"] == ["serve"] and before["Service"] == ["serve"] and before["Job"]

    run = run_action(two_stage_workspace, {**inputs, "command": "delete"})

    assert run.returncode == 0, run.stdout + run.stderr
    assert set(run.outputs) == set(OUTPUT_NAMES)
    assert run.outputs["status"] == "deleted"
    assert run.outputs["namespace"] == "two-stage"
    after = pipeline_objects(fake_cluster)
    assert after["Job"] == [] and after["Deployment"] == [] and after["Service"] == []
    assert "delete" in run.summary.lower()
