"""Atomic deploys (--atomic, the action's `atomic` input) on the fake API server: a deploy that fails or
is cancelled puts every service it changed back at its previous revision and removes the ones it
created; without it, only the failed service is rolled back (as before)."""

from __future__ import annotations

import base64
import threading

import pytest

from bodywork_action.errors import ClusterAuthError
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.model import Pipeline
from bodywork_action.report import format_result_lines
from bodywork_action.results import DeploymentStatus, StageStatus
from bodywork_action.secret_groups import SecretRequest, build_secret_supply
from bodywork_action.selection import select_stages
from testing.builders import batch, pipeline, service
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.controllers import is_ready

OLD_COMMIT, NEW_COMMIT = "1" * 40, "2" * 40
OLD_IMAGE, NEW_IMAGE = "python:3.11-slim", "python:3.12-slim"
TOKEN = "bodywork.dev/restart-token"


def before() -> Pipeline:
    """What is deployed first: serve_a only."""
    return pipeline(
        "train >> serve_a >> check",
        batch("train"),
        service("serve_a"),
        batch("check"),
        docker_image=OLD_IMAGE,
    )


def after() -> Pipeline:
    """The deploy under test: a new image, a new commit, and a new service serve_b."""
    return pipeline(
        "train >> serve_a, serve_b >> check",
        batch("train"),
        service("serve_a"),
        service("serve_b"),
        batch("check"),
        docker_image=NEW_IMAGE,
    )


def live_revision(fake: FakeCluster, name: str) -> tuple[str, str, str, str]:
    """(image, GIT_COMMIT_HASH, the pod template's restart token, the Deployment's commit annotation)."""
    deployment = fake.get("Deployment", name, "demo")
    assert deployment is not None, f"Deployment {name} is gone"
    template = deployment["spec"]["template"]
    container = template["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container.get("env") or []}
    return (
        container["image"],
        env["GIT_COMMIT_HASH"],
        template["metadata"]["annotations"][TOKEN],
        deployment["metadata"]["annotations"]["bodywork.dev/commit"],
    )


def ready_tokens(fake: FakeCluster, stage: str) -> set[str]:
    return {
        p["metadata"]["annotations"][TOKEN]
        for p in fake.list("Pod", "demo")
        if p["metadata"]["labels"].get(NAME_LABEL) == stage and is_ready(p)
    }


@pytest.fixture
def deployed_before(deploy: Deployer, fake_cluster: FakeCluster) -> tuple[str, str, str, str]:
    first = deploy(before(), deployment_id="run-1", commit=OLD_COMMIT)
    assert first.succeeded, first.one_line()
    fake_cluster.script("Job", {NAME_LABEL: "check"}, {"behavior": "fail", "exit_code": 3})
    return live_revision(fake_cluster, "serve-a")


def test_atomic_deploy_whose_last_stage_fails_leaves_every_service_at_its_previous_revision(
    deploy: Deployer, fake_cluster: FakeCluster, deployed_before: tuple[str, str, str, str]
) -> None:
    assert deployed_before == (OLD_IMAGE, OLD_COMMIT, "run-1", OLD_COMMIT)

    result = deploy(after(), deployment_id="run-2", commit=NEW_COMMIT, atomic=True)

    assert result.status is DeploymentStatus.FAILED
    assert result.stage("check").status is StageStatus.FAILED
    serve_a, serve_b = result.stage("serve_a"), result.stage("serve_b")
    assert (serve_a.status, serve_a.rolled_back, serve_a.rollback_removed) == (
        StageStatus.SUCCEEDED,
        True,
        False,
    )
    assert (serve_b.status, serve_b.rolled_back, serve_b.rollback_removed) == (
        StageStatus.SUCCEEDED,
        True,
        True,
    )
    assert not serve_a.rollback_error and not serve_b.rollback_error
    # serve_a: the live Deployment is the one run-1 wrote, and its pods (run-1's) are serving.
    assert live_revision(fake_cluster, "serve-a") == deployed_before
    deployment = fake_cluster.get("Deployment", "serve-a", "demo")
    assert deployment is not None
    assert deployment["metadata"]["annotations"]["bodywork.dev/rolled-back-from"] == "run-2"
    assert deployment["metadata"]["labels"]["bodywork.dev/commit"] == OLD_COMMIT
    assert ready_tokens(fake_cluster, "serve-a") == {"run-1"}
    # serve_b was new: nothing of it is left.
    assert names(fake_cluster, "Deployment") == ["serve-a"]
    assert names(fake_cluster, "Service") == ["serve-a"]
    # Batch stages that ran are reported, not undone.
    assert {j["metadata"]["labels"][NAME_LABEL] for j in fake_cluster.list("Job", "demo")} >= {
        "train",
        "check",
    }
    lines = format_result_lines(result)
    assert "the pipeline's services were left at their previous revision" in lines[0]
    assert "Rolled back (atomic): serve_a (previous revision), serve_b (removed: new in this deploy)" in lines
    assert "Batch stages that ran are not undone: train, check" in lines
    assert result.to_json()["stages"][1]["rolled_back"] is True


def test_without_atomic_the_services_stay_new_when_a_later_stage_fails(
    deploy: Deployer, fake_cluster: FakeCluster, deployed_before: tuple[str, str, str, str]
) -> None:
    result = deploy(after(), deployment_id="run-2", commit=NEW_COMMIT)

    assert result.status is DeploymentStatus.FAILED
    assert not result.stage("serve_a").rolled_back and not result.stage("serve_b").rolled_back
    assert live_revision(fake_cluster, "serve-a") == (NEW_IMAGE, NEW_COMMIT, "run-2", NEW_COMMIT)
    assert names(fake_cluster, "Deployment") == ["serve-a", "serve-b"]
    assert "atomic" not in " ".join(format_result_lines(result)).lower()


def test_cancelled_atomic_deploy_puts_the_services_back(
    deploy: Deployer, fake_cluster: FakeCluster, deployed_before: tuple[str, str, str, str]
) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "check"}, {"behavior": "hang"})
    cancel = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.kind is ProgressKind.STAGE_STARTED and progress.stages == ("check",):
            cancel.set()

    result = deploy(
        after(), deployment_id="run-2", commit=NEW_COMMIT, atomic=True, cancel=cancel, report=on_progress
    )

    assert result.status is DeploymentStatus.CANCELLED
    assert result.stage("serve_a").rolled_back and result.stage("serve_b").rollback_removed
    assert live_revision(fake_cluster, "serve-a") == deployed_before
    assert names(fake_cluster, "Deployment") == ["serve-a"]
    assert names(fake_cluster, "Service") == ["serve-a"]
    assert ready_tokens(fake_cluster, "serve-a") == {"run-1"}
    rolled = [p for p in deploy.progress if p.kind is ProgressKind.ROLLED_BACK and p.detail == "atomic"]
    assert sorted(p.stages[0] for p in rolled) == ["serve_a", "serve_b"]


def test_atomic_deploy_failing_in_its_first_stage_puts_its_secrets_back(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "db", "namespace": "demo"},
            "data": {"PASSWORD": base64.b64encode(b"old-password").decode()},
        }
    )
    p = pipeline("serve", service("serve", secrets=(("db", "PASSWORD"), ("api", "TOKEN"))))
    supply = build_secret_supply(
        [SecretRequest("db", ("PASSWORD",)), SecretRequest("api", ("TOKEN",))],
        [{"PASSWORD": "new-password", "TOKEN": "new-token"}],
    )
    fake_cluster.script("Deployment", "serve", {"behavior": "imagepull"})

    result = deploy(p, secrets=supply, atomic=True)

    assert result.stage("serve").rolled_back and result.stage("serve").rollback_removed
    assert names(fake_cluster, "Deployment") == [] and names(fake_cluster, "Service") == []
    assert names(fake_cluster, "Secret") == ["db"], "the Secret this run created is removed"
    db = fake_cluster.get("Secret", "db", "demo")
    assert db is not None and base64.b64decode(db["data"]["PASSWORD"]) == b"old-password"
    assert "Secret/api removed (created by this deploy)" in result.message
    assert "Secret/db put back as it was" in result.message
    assert "new-password" not in repr(result) and "new-token" not in repr(result)


def test_when_the_atomic_rollback_itself_is_refused_the_error_says_what_was_left(
    deploy: Deployer, fake_cluster: FakeCluster, deployed_before: tuple[str, str, str, str]
) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "check"}, {"behavior": "hang"})
    real_token = fake_cluster.token

    def on_progress(progress: Progress) -> None:
        if progress.kind is ProgressKind.STAGE_STARTED and progress.stages == ("check",):
            fake_cluster.token = "revoked"  # from now on every request is refused (401)

    try:
        with pytest.raises(ClusterAuthError) as caught:
            deploy(after(), deployment_id="run-2", commit=NEW_COMMIT, atomic=True, report=on_progress)
    finally:
        fake_cluster.token = real_token

    message = str(caught.value)
    assert "serve_a NOT rolled back: Deployment/serve-a still at this deploy's revision" in message
    assert "serve_b NOT rolled back" in message
    assert live_revision(fake_cluster, "serve-a") == (NEW_IMAGE, NEW_COMMIT, "run-2", NEW_COMMIT)


def test_an_atomic_partial_deploy_undoes_only_its_selected_stages_and_never_removes_the_others(
    deploy: Deployer, fake_cluster: FakeCluster, deployed_before: tuple[str, str, str, str]
) -> None:
    jobs_before = names(fake_cluster, "Job")
    selection = select_stages(after(), only=("serve_b", "check"))

    result = deploy(after(), deployment_id="run-2", commit=NEW_COMMIT, atomic=True, selection=selection)

    assert result.status is DeploymentStatus.FAILED
    assert [(s.stage, s.status, s.rolled_back) for s in result.stages] == [
        ("train", StageStatus.SKIPPED, False),
        ("serve_a", StageStatus.SKIPPED, False),
        ("serve_b", StageStatus.SUCCEEDED, True),
        ("check", StageStatus.FAILED, False),
    ]
    assert result.stage("serve_b").rollback_removed and "serve-b" not in names(fake_cluster, "Deployment")
    # serve_a was left out: neither rolled back nor removed, still the revision deployed before.
    assert live_revision(fake_cluster, "serve-a") == deployed_before
    assert names(fake_cluster, "Service") == ["serve-a"]
    assert [j for j in names(fake_cluster, "Job") if j in jobs_before] == jobs_before  # train's kept
