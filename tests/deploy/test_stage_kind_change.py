"""A stage that changed from batch to service (or back), on the fake API server: the deploy removes the
old kind's objects, and ``status`` shows the stage once, as what it is now."""

from __future__ import annotations

from bodywork_action.kube.inventory import read_status
from testing.builders import batch, pipeline, service
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster

AS_BATCH = pipeline("prep >> x", batch("prep"), batch("x"))
AS_SERVICE = pipeline("prep >> x", batch("prep"), service("x", ingress=True))


def _rows(deploy: Deployer) -> list[tuple[str, str, str]]:
    state = read_status(AS_BATCH, target=deploy.target, environ={})
    return [(s.stage, s.kind, s.object.split("/")[0]) for s in state.stages]


def _jobs_of(fake: FakeCluster, stage: str) -> list[str]:
    return [
        j["metadata"]["name"]
        for j in fake.list("Job", "demo")
        if j["metadata"]["labels"][NAME_LABEL] == stage
    ]


def test_batch_turned_service_loses_its_jobs_and_shows_once(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    for run in (1, 2):  # Job history of x: two Jobs, both to go
        assert deploy(AS_BATCH, deployment_id=f"run-{run}").succeeded
    assert len(_jobs_of(fake_cluster, "x")) == 2

    result = deploy(AS_SERVICE, deployment_id="run-3")

    assert result.succeeded, result.one_line()
    assert _jobs_of(fake_cluster, "x") == []
    assert len(_jobs_of(fake_cluster, "prep")) == 3, "the other stage keeps its Job history"
    assert names(fake_cluster, "Deployment") == ["x"]
    assert sorted(_rows(deploy)) == [("prep", "batch", "Job"), ("x", "service", "Deployment")]


def test_service_turned_batch_loses_its_deployment_service_and_ingress(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    assert deploy(AS_SERVICE, deployment_id="run-1").succeeded

    result = deploy(AS_BATCH, deployment_id="run-2")

    assert result.succeeded, result.one_line()
    assert (names(fake_cluster, "Deployment"), names(fake_cluster, "Ingress")) == ([], [])
    assert "x" not in names(fake_cluster, "Service")
    assert len(_jobs_of(fake_cluster, "x")) == 1
    assert sorted(_rows(deploy)) == [("prep", "batch", "Job"), ("x", "batch", "Job")]


def test_status_shows_the_current_kind_while_a_failed_deploy_left_both(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    before = pipeline("x >> after", batch("x"), batch("after"))
    now = pipeline("x >> after", service("x"), batch("after"))
    assert deploy(before, deployment_id="run-1").succeeded
    fake_cluster.script("Job", {NAME_LABEL: "after"}, {"behavior": "fail"})

    result = deploy(now, deployment_id="run-2")

    assert not result.succeeded  # so nothing was pruned: x is both a Job and a Deployment now
    assert len(_jobs_of(fake_cluster, "x")) == 1 and names(fake_cluster, "Deployment") == ["x"]
    status = read_status(now, target=deploy.target, environ={})
    assert [(s.stage, s.kind) for s in status.stages if s.stage == "x"] == [("x", "service")]
