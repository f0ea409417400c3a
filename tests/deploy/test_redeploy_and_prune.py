"""Re-deploying the same commit, pruning removed stages and old Jobs, dry runs, status and delete."""

from __future__ import annotations

import time

from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.inventory import delete_pipeline, read_status
from testing.builders import batch, four_stage_pipeline, pipeline, service
from testing.deploy_runs import Deployer, names
from testing.fake_k8s.cluster import FakeCluster

TOKEN = "bodywork.dev/restart-token"


def test_redeploying_the_same_commit_reruns_batch_stages_and_restarts_services(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = four_stage_pipeline()
    assert deploy(p, deployment_id="run-1").succeeded
    before = fake_cluster.get("Deployment", "c", "demo")
    assert before is not None

    result = deploy(p, deployment_id="run-2")

    assert result.succeeded, result.one_line()
    assert len([j for j in names(fake_cluster, "Job") if j.startswith("a-")]) == 2
    after = fake_cluster.get("Deployment", "c", "demo")
    assert after is not None
    assert after["metadata"]["generation"] > before["metadata"]["generation"]
    assert after["spec"]["template"]["metadata"]["annotations"][TOKEN] == "run-2"
    assert after["metadata"]["uid"] == before["metadata"]["uid"], "rolled, not re-created"


def test_stage_removed_from_the_dag_is_pruned_and_nothing_else_is_touched(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    assert deploy(four_stage_pipeline(), deployment_id="run-1").succeeded
    unmanaged = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "other", "namespace": "demo"},
        "spec": {"ports": [{"port": 80}]},
    }
    fake_cluster.create(unmanaged)
    c_before = fake_cluster.get("Service", "c", "demo")

    result = deploy(
        pipeline("a >> b,c", batch("a"), batch("b"), service("c"), service("d", ingress=True)),
        deployment_id="run-2",
    )

    assert result.succeeded
    assert names(fake_cluster, "Deployment") == ["c"]
    assert names(fake_cluster, "Service") == ["c", "other"]
    assert names(fake_cluster, "Ingress") == []
    assert "Deployment/d" in result.message
    c_after = fake_cluster.get("Service", "c", "demo")
    assert c_before is not None and c_after is not None
    assert c_after["spec"]["clusterIP"] == c_before["spec"]["clusterIP"]


def test_only_the_last_three_jobs_of_a_stage_are_kept(deploy: Deployer, fake_cluster: FakeCluster) -> None:
    p = pipeline("train", batch("train"))
    for run in range(5):
        assert deploy(p, deployment_id=f"run-{run}").succeeded
    jobs = fake_cluster.list("Job", "demo")
    kept = {j["metadata"]["annotations"]["bodywork.dev/deployment-id"] for j in jobs}
    assert kept == {"run-2", "run-3", "run-4"}


def test_dry_run_sends_every_object_with_dry_run_and_creates_nothing(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    result = deploy(four_stage_pipeline(), dry_run=True)

    assert result.succeeded and result.dry_run
    assert "nothing was created" in result.message
    assert result.one_line().startswith("demo: dry run succeeded in ")
    assert fake_cluster.get("Namespace", "demo", None) is None
    writes = [r for r in fake_cluster.requests if r.verb in ("create", "update", "patch", "delete")]
    assert writes and all("dryRun=All" in r.query for r in writes)


def test_dry_run_against_a_deployed_pipeline_changes_nothing(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    assert deploy(four_stage_pipeline(), deployment_id="run-1").succeeded
    before = {kind: fake_cluster.list(kind, "demo") for kind in ("Job", "Deployment", "Service", "Ingress")}
    fake_cluster.requests.clear()

    result = deploy(four_stage_pipeline(), deployment_id="run-2", dry_run=True)

    assert result.succeeded, [s.message for s in result.stages]
    after = {kind: fake_cluster.list(kind, "demo") for kind in ("Job", "Deployment", "Service", "Ingress")}
    assert [o["metadata"]["resourceVersion"] for k in before for o in before[k]] == [
        o["metadata"]["resourceVersion"] for k in after for o in after[k]
    ]
    updates = fake_cluster.requests.filter(verb="update")
    assert updates and all("dryRun=All" in r.query for r in updates)


def test_status_reports_each_stage_and_delete_removes_what_the_tool_created(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = four_stage_pipeline()
    assert deploy(p).succeeded
    target = KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path))

    state = read_status(p, target=target, environ={})
    by_stage = {s.stage: s for s in state.stages}
    assert set(by_stage) == {"a", "b", "c", "d"}
    assert {s.status for s in state.stages} == {"succeeded"}
    assert by_stage["d"].url == "http://d.demo.svc.cluster.local:8000"
    assert by_stage["d"].ingress_path == "/demo/d"
    assert state.namespace_created_by_tool

    deleted = delete_pipeline(p, target=target, environ={})
    assert deleted.namespace_deleted
    assert "Deployment/c" in deleted.deleted
    assert fake_cluster.get("Namespace", "demo", None) is None


def test_delete_keeps_a_namespace_the_tool_did_not_create(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    p = pipeline("serve", service("serve"))
    assert deploy(p).succeeded

    deleted = delete_pipeline(p, target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)), environ={})

    assert not deleted.namespace_deleted
    assert "not created by bodywork-action" in deleted.message
    assert fake_cluster.get("Namespace", "demo", None) is not None
    assert names(fake_cluster, "Deployment") == []


def test_delete_waits_for_an_api_server_that_went_away_only_as_long_as_it_may(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    import pytest

    from bodywork_action.errors import ClusterError

    p = four_stage_pipeline()
    assert deploy(p).succeeded
    waiting: list[str] = []
    # The server answers the first reads, then goes quiet for every delete: it went away mid-command.
    fake_cluster.faults.match = lambda method, path: method == "DELETE"
    fake_cluster.faults.rate_drop = 1.0
    started = time.monotonic()
    with pytest.raises(ClusterError) as caught:
        delete_pipeline(
            p,
            target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
            environ={},
            timeout_seconds=3,
            report=waiting.append,
        )
    fake_cluster.faults.rate_drop = 0.0
    assert time.monotonic() - started < 60  # it gave up when timeout_seconds (3) ran out: not forever
    message = str(caught.value)
    assert "stopped answering" in message and "the time allowed ran out" in message
    assert "still there: Deployment/c" in message
    assert fake_cluster.list("Deployment", "demo"), "nothing was deleted while the server was away"
