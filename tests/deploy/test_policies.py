"""Pure decisions of cluster.py and deploy.py: retries, watch reconnects, errors, kubeconfig, pruning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bodywork_action.errors import ClusterAuthError, ClusterConflict, InputError
from bodywork_action.kube.client import (
    JOB,
    RETRY_MAX_DELAY_SECONDS,
    SERVER_MAX_ATTEMPTS,
    UNREACHED_MAX_ATTEMPTS,
    Failure,
    KubeTarget,
    WatchAction,
    WatchEnd,
    build_cluster_error,
    decide_retry,
    decide_watch_reconnect,
    resolve_kubeconfig_source,
)
from bodywork_action.reconcile import build_prune_plan, build_replacement, select_log_containers
from testing.builders import four_stage_pipeline
from testing.deploy_runs import Deployer
from testing.fake_k8s.cluster import FakeCluster

OURS = {"app.kubernetes.io/managed-by": "bodywork-action", "app.kubernetes.io/part-of": "demo"}


def test_throttled_requests_wait_as_long_as_retry_after_says() -> None:
    decision = decide_retry(Failure.THROTTLED, 1, idempotent=False, retry_after_seconds=2, jitter=0.0)
    assert (decision.retry, decision.delay_seconds) == (True, 2)


def test_server_errors_are_retried_only_for_idempotent_verbs_and_only_so_often() -> None:
    assert decide_retry(Failure.SERVER, 1, idempotent=True).retry
    assert not decide_retry(Failure.SERVER, 1, idempotent=False).retry
    assert not decide_retry(Failure.UNAVAILABLE, 1, idempotent=False).retry
    assert not decide_retry(Failure.SERVER, SERVER_MAX_ATTEMPTS, idempotent=True).retry
    assert not decide_retry(Failure.OTHER, 1, idempotent=True).retry


def test_an_api_server_that_is_away_is_waited_for_until_the_time_runs_out_not_a_count() -> None:
    for failure in (Failure.UNREACHABLE, Failure.UNAVAILABLE, Failure.THROTTLED):
        assert decide_retry(failure, 500, idempotent=True, remaining_seconds=11).retry
        assert not decide_retry(failure, 2, idempotent=True, remaining_seconds=0.05).retry
    # A cluster that never answered at all: a few quick tries, then "check the kubeconfig".
    assert decide_retry(Failure.UNREACHABLE, UNREACHED_MAX_ATTEMPTS - 1, idempotent=True, reached=False).retry
    assert not decide_retry(Failure.UNREACHABLE, UNREACHED_MAX_ATTEMPTS, idempotent=True, reached=False).retry


def test_retry_delays_grow_are_capped_and_jittered() -> None:
    delays = [decide_retry(Failure.THROTTLED, n, idempotent=True).delay_seconds for n in range(1, 8)]
    assert delays == sorted(delays) and delays[0] > 0
    assert max(delays) == RETRY_MAX_DELAY_SECONDS
    assert decide_retry(Failure.THROTTLED, 1, idempotent=True, retry_after_seconds=999).delay_seconds == 10
    low = decide_retry(Failure.UNAVAILABLE, 4, idempotent=True, jitter=0.0).delay_seconds
    high = decide_retry(Failure.UNAVAILABLE, 4, idempotent=True, jitter=1.0).delay_seconds
    assert low == pytest.approx(high / 2) and low > 0
    # Retry-After is a minimum: jitter never shortens it.
    assert (
        decide_retry(Failure.THROTTLED, 1, idempotent=True, retry_after_seconds=3, jitter=0).delay_seconds
        == 3
    )


@pytest.mark.parametrize(
    ("end", "attempt", "remaining", "action"),
    [
        (WatchEnd.CLOSED, 0, 100.0, WatchAction.RESUME),
        (WatchEnd.DROPPED, 1, 100.0, WatchAction.RESUME),
        (WatchEnd.GONE, 1, 100.0, WatchAction.RELIST),
        (WatchEnd.THROTTLED, 2, 100.0, WatchAction.RESUME),
        (WatchEnd.REFUSED, 1, 100.0, WatchAction.GIVE_UP),
        (WatchEnd.DROPPED, 70, 100.0, WatchAction.RESUME),  # not a count: the time left decides
        (WatchEnd.DROPPED, 1, 0.0, WatchAction.GIVE_UP),
    ],
)
def test_watch_reconnect_policy(end: WatchEnd, attempt: int, remaining: float, action: WatchAction) -> None:
    decision = decide_watch_reconnect(end, attempt, remaining_seconds=remaining)
    assert decision.action is action
    assert decision.delay_seconds <= remaining


def test_forbidden_names_verb_resource_and_namespace_and_quotes_only_a_status() -> None:
    status = json.dumps({"kind": "Status", "reason": "Forbidden", "message": "user ci cannot create jobs"})
    error = build_cluster_error(403, status, verb="create", kind=JOB, name="train-1", namespace="ml")
    assert isinstance(error, ClusterAuthError)
    assert "cannot create jobs.batch 'train-1' in namespace 'ml'" in str(error)
    assert "user ci cannot create jobs" in str(error)
    leaky = build_cluster_error(500, "password=hunter2 in some proxy page", verb="get", kind=JOB)
    assert "hunter2" not in str(leaky)
    assert isinstance(build_cluster_error(409, "", verb="create", kind=JOB), ClusterConflict)


def test_a_terminating_namespace_is_not_reported_as_missing_permission() -> None:
    # What kube-apiserver's NamespaceLifecycle admission answers (seen on the real control plane).
    status = json.dumps(
        {
            "kind": "Status",
            "reason": "Forbidden",
            "message": 'jobs.batch "train-1" is forbidden: unable to create new content in namespace ml '
            "because it is being terminated",
            "details": {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]},
        }
    )
    error = build_cluster_error(403, status, verb="create", kind=JOB, name="train-1", namespace="ml")
    assert not isinstance(error, ClusterAuthError)
    assert error.reason == "NamespaceTerminating"
    assert "namespace 'ml' is being deleted" in str(error) and "RBAC" not in str(error)
    for odd in ({"causes": 5}, {"causes": [5, None]}, 7):  # malformed bodies never crash the report
        body = json.dumps({"kind": "Status", "reason": "Forbidden", "details": odd})
        assert isinstance(build_cluster_error(403, body, verb="create", kind=JOB), ClusterAuthError)


def test_kubeconfig_is_resolved_like_kubectl(tmp_path: Path) -> None:
    default = tmp_path / ".kube" / "config"
    assert (
        resolve_kubeconfig_source(KubeTarget(kubeconfig="/x"), {"KUBECONFIG": "/y"}, home=str(tmp_path))
        == "/x"
    )
    assert resolve_kubeconfig_source(KubeTarget(), {"KUBECONFIG": "/y:/z"}, home=str(tmp_path)) == "/y:/z"
    in_cluster = {"KUBERNETES_SERVICE_HOST": "10.0.0.1"}
    assert resolve_kubeconfig_source(KubeTarget(), in_cluster, home=str(tmp_path)) == ""
    default.parent.mkdir()
    default.write_text("{}")
    assert resolve_kubeconfig_source(KubeTarget(), in_cluster, home=str(tmp_path)) == str(default)
    default.unlink()
    with pytest.raises(InputError, match="no kubeconfig"):
        resolve_kubeconfig_source(KubeTarget(), {}, home=str(tmp_path))


def obj(kind: str, name: str, labels: dict[str, str] | None = None, created: str = "", rv: str = "1") -> dict:
    meta = {"name": name, "labels": OURS if labels is None else labels, "resourceVersion": rv}
    if created:
        meta["creationTimestamp"] = created
    return {"kind": kind, "metadata": meta}


def test_prune_plan_removes_owned_objects_of_removed_stages_only() -> None:
    desired = [obj("Deployment", "c"), obj("Service", "c")]
    observed = [
        obj("Deployment", "c"),
        obj("Service", "c"),
        obj("Deployment", "old"),
        obj("Service", "old"),
        obj("Ingress", "c"),
        obj("Deployment", "foreign", labels={"app.kubernetes.io/part-of": "demo"}),
        obj("Deployment", "other-pipeline", labels={**OURS, "app.kubernetes.io/part-of": "other"}),
    ]
    plan = build_prune_plan(desired, observed, pipeline_label="demo")
    assert sorted(plan) == [("Deployment", "old"), ("Ingress", "c"), ("Service", "old")]


def test_prune_plan_keeps_the_newest_jobs_of_each_stage() -> None:
    train = {**OURS, "app.kubernetes.io/name": "train"}
    jobs = [obj("Job", f"train-{i}", labels=train, created=f"2024-01-01T00:00:0{i}Z") for i in range(5)]
    plan = build_prune_plan([jobs[4]], jobs, pipeline_label="demo", keep_jobs_per_stage=3)
    assert plan == [("Job", "train-1"), ("Job", "train-0")]


def test_replacing_a_service_keeps_its_cluster_ip() -> None:
    manifest = {"kind": "Service", "metadata": {"name": "c"}, "spec": {"ports": [{"port": 80}]}}
    existing = {
        "metadata": {"resourceVersion": "7"},
        "spec": {"clusterIP": "10.0.0.9", "clusterIPs": ["10.0.0.9"]},
    }
    body = build_replacement(manifest, existing)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["spec"]["clusterIP"] == "10.0.0.9"
    assert "resourceVersion" not in manifest["metadata"], "the rendered manifest is not modified"


def test_logs_of_a_crashed_waiting_container_come_from_its_previous_instance() -> None:
    pod = {
        "spec": {"initContainers": [{"name": "git-sync"}], "containers": [{"name": "stage"}]},
        "status": {
            "initContainerStatuses": [{"name": "git-sync", "restartCount": 0, "state": {"terminated": {}}}],
            "containerStatuses": [
                {"name": "stage", "restartCount": 2, "state": {"waiting": {"reason": "x"}}}
            ],
        },
    }
    assert select_log_containers(pod) == [("git-sync", False), ("stage", True)]


def test_throttled_and_failing_api_is_retried_until_the_deploy_succeeds(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.faults.retry_after = 0
    fake_cluster.faults.rate_429 = 0.3
    fake_cluster.faults.match = lambda method, path: method != "GET" or "watch" not in path
    result = deploy(four_stage_pipeline())
    assert result.succeeded, result.one_line()
    assert [r for r in fake_cluster.requests if r.fault == "429"], "the fault really fired"
