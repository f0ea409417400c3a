"""Smoke tests of the real-control-plane tier itself: the real apiserver's validation and watch
semantics, the real Job / Deployment / ReplicaSet controllers and scheduler, and kwok's pod stages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from kubernetes import client, watch

from testing.cluster.behaviours import LABEL
from testing.cluster.launcher import ControlPlane

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

T = TypeVar("T")
IMAGE = "registry.invalid/bodywork/never-pulled:1"  # nothing is ever pulled: kwok fakes the kubelet


def wait_for(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.2) -> T:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


@pytest.fixture
def api(control_plane: ControlPlane) -> Iterator[client.ApiClient]:
    with control_plane.api_client() as api_client:
        yield api_client


def job_manifest(name: str, backoff_limit: int = 6, behaviour: str | None = None, exit_code: int = 1):
    template: dict[str, Any] = {
        "metadata": {"labels": {"app": name}},
        "spec": {
            "restartPolicy": "Never",
            "containers": [{"name": "main", "image": IMAGE, "command": ["sh", "-c", "exit 0"]}],
        },
    }
    if behaviour:
        ControlPlane.apply_behaviour(template, behaviour, exit_code=exit_code)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": backoff_limit, "template": template},
    }


def conditions(obj: Any) -> dict[str, Any]:
    return {c.type: c for c in (obj.status.conditions or [])}


def test_version_reports_the_built_release(api: client.ApiClient) -> None:
    info = client.VersionApi(api).get_code()
    assert info.git_version == "v1.37.2"
    assert (info.major, info.minor) == ("1", "37")


def test_every_fake_node_renews_its_lease(api: client.ApiClient, control_plane: ControlPlane) -> None:
    """Without leases the node controller marks kwok's nodes NotReady ~50 s after start (their status
    heartbeat is every ~10 min), and with them every pod Ready=False: later tests would see phantom
    outages."""
    leases = client.CoordinationV1Api(api)

    def first_renewals() -> dict[str, str] | None:
        times = {
            n: leases.read_namespaced_lease(n, "kube-node-lease").spec.renew_time
            for n in control_plane.node_names
        }
        return times if all(times.values()) else None

    first = wait_for(first_renewals, 30, "a lease for every node")
    wait_for(
        lambda: all(
            leases.read_namespaced_lease(n, "kube-node-lease").spec.renew_time > first[n]
            for n in control_plane.node_names
        ),
        30,
        "every node lease renewed",
    )


def test_job_completes_via_real_job_controller(api: client.ApiClient, cp_namespace: str) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(cp_namespace, job_manifest("ok"))

    def complete():
        job = batch.read_namespaced_job("ok", cp_namespace)
        cond = conditions(job).get("Complete")
        return job if cond is not None and cond.status == "True" else None

    job = wait_for(complete, 60, "Job Complete condition")
    assert job.status.succeeded == 1
    assert not job.status.failed
    # The status was written by the real controller-manager, not by kwok or the test.
    status_managers = {m.manager for m in job.metadata.managed_fields if m.subresource == "status"}
    assert "kube-controller-manager" in status_managers
    pods = core.list_namespaced_pod(cp_namespace, label_selector="app=ok").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    assert pods[0].spec.node_name.startswith("kwok-node-")  # bound by the real scheduler
    assert pods[0].status.host_ip == "127.0.0.1"
    assert pods[0].status.container_statuses[0].state.terminated.exit_code == 0


def test_failing_job_retries_backoff_limit_then_fails(api: client.ApiClient, cp_namespace: str) -> None:
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    batch.create_namespaced_job(cp_namespace, job_manifest("bad", 1, behaviour="fail", exit_code=3))

    def failed():
        job = batch.read_namespaced_job("bad", cp_namespace)
        cond = conditions(job).get("Failed")
        return job if cond is not None and cond.status == "True" else None

    # backoffLimit 1 = the first pod plus one retry, after the controller's 10 s pod-failure back-off.
    job = wait_for(failed, 90, "Job Failed condition")
    assert conditions(job)["Failed"].reason == "BackoffLimitExceeded"
    assert job.status.failed == 2
    assert not job.status.succeeded
    pods = core.list_namespaced_pod(cp_namespace, label_selector="app=bad").items
    assert len(pods) == 2
    for pod in pods:
        assert pod.status.phase == "Failed"
        assert pod.status.container_statuses[0].state.terminated.exit_code == 3


def deployment_manifest(name: str, replicas: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "web", "image": IMAGE, "ports": [{"containerPort": 8000}]}]},
            },
        },
    }


def test_deployment_rollout_and_crashlooping_second_rollout(api: client.ApiClient, cp_namespace: str) -> None:
    apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
    apps.create_namespaced_deployment(cp_namespace, deployment_manifest("web"))

    def rolled_out():
        d = apps.read_namespaced_deployment("web", cp_namespace)
        s = d.status
        done = (
            s.observed_generation == d.metadata.generation
            and s.updated_replicas == 2
            and s.available_replicas == 2
            and s.ready_replicas == 2
        )
        return d if done else None

    wait_for(rolled_out, 60, "first rollout available")
    (old_rs,) = apps.list_namespaced_replica_set(cp_namespace, label_selector="app=web").items
    assert old_rs.status.ready_replicas == 2

    # Second rollout: every new pod crash-loops (kwok stage "crashloop").
    patch = {"spec": {"template": {"metadata": {"labels": {LABEL: "crashloop"}}}}}
    patch["spec"]["template"]["spec"] = {"containers": [{"name": "web", "image": IMAGE + "-v2"}]}
    apps.patch_namespaced_deployment("web", cp_namespace, patch)

    def crashlooping_new_pod():
        pods = core.list_namespaced_pod(cp_namespace, label_selector=f"app=web,{LABEL}=crashloop").items
        for pod in pods:
            for cs in pod.status.container_statuses or []:
                if (
                    cs.state.waiting
                    and cs.state.waiting.reason == "CrashLoopBackOff"
                    and cs.restart_count >= 2
                ):
                    return pod
        return None

    pod = wait_for(crashlooping_new_pod, 60, "a new pod in CrashLoopBackOff with restarts")
    assert pod.status.container_statuses[0].last_state.terminated.exit_code == 1
    sets = {rs.metadata.name: rs for rs in apps.list_namespaced_replica_set(cp_namespace).items}
    assert len(sets) == 2
    new_rs = next(rs for name, rs in sets.items() if name != old_rs.metadata.name)
    assert not new_rs.status.ready_replicas
    # maxUnavailable 25% of 2 rounds down to 0: the real controller keeps both old pods, Ready.
    assert sets[old_rs.metadata.name].status.ready_replicas == 2
    d = apps.read_namespaced_deployment("web", cp_namespace)
    assert d.status.available_replicas == 2
    assert d.status.unavailable_replicas == 1
    old_pods = core.list_namespaced_pod(
        cp_namespace, label_selector=f"pod-template-hash={old_rs.metadata.labels['pod-template-hash']}"
    ).items
    assert len(old_pods) == 2
    assert all(conditions(p)["Ready"].status == "True" for p in old_pods)


def test_watch_from_compacted_resource_version_gets_410(
    api: client.ApiClient, cp_namespace: str, control_plane: ControlPlane
) -> None:
    # Events are the resource the apiserver does not watch-cache by default, so their watches go
    # straight to etcd. (A watch on a cached resource such as ConfigMaps is served from the
    # apiserver's in-memory window, exactly as in production, and only 410s once that window moved on.)
    core = client.CoreV1Api(api)
    event = {
        "metadata": {"name": "e"},
        "involvedObject": {"kind": "ConfigMap", "name": "x", "namespace": cp_namespace},
        "reason": "Testing",
        "message": "0",
        "type": "Normal",
    }
    old_rv = core.create_namespaced_event(cp_namespace, event).metadata.resource_version
    for i in range(1, 4):
        core.patch_namespaced_event("e", cp_namespace, {"message": str(i)})
    compacted_at = control_plane.compact_etcd()
    assert compacted_at > int(old_rv)

    # Raw watch: the apiserver answers with an ERROR event carrying a 410 Status (or a 410 response).
    resp = core.list_namespaced_event(
        cp_namespace, watch=True, resource_version=old_rv, timeout_seconds=5, _preload_content=False
    )
    try:
        if resp.status == 410:
            status = json.loads(resp.data)
        else:
            first = json.loads(next(iter(resp.stream(amt=None))).splitlines()[0])
            assert first["type"] == "ERROR", first
            status = first["object"]
    finally:
        resp.release_conn()
    assert status["code"] == 410
    assert status["reason"] in ("Expired", "Gone")

    # The official client surfaces it as ApiException(410) once its single automatic retry also fails.
    with pytest.raises(client.ApiException) as exc_info:
        for _ in watch.Watch().stream(
            core.list_namespaced_event, cp_namespace, resource_version=old_rv, timeout_seconds=5
        ):
            pass
    assert exc_info.value.status == 410

    # A watch from a current resourceVersion works normally after the compaction.
    current = core.list_namespaced_event(cp_namespace).metadata.resource_version
    core.patch_namespaced_event("e", cp_namespace, {"message": "after"})
    w = watch.Watch()
    seen = []
    for ev in w.stream(core.list_namespaced_event, cp_namespace, resource_version=current, timeout_seconds=5):
        seen.append((ev["type"], ev["object"].message))
        w.stop()
    assert seen == [("MODIFIED", "after")]


def test_dry_run_all_creates_nothing(api: client.ApiClient, cp_namespace: str) -> None:
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    echoed = apps.create_namespaced_deployment(cp_namespace, deployment_manifest("dry"), dry_run="All")
    # The real apiserver ran defaulting and admission on it...
    assert echoed.spec.strategy.type == "RollingUpdate"
    assert echoed.spec.template.spec.containers[0].termination_message_path == "/dev/termination-log"
    # ...but persisted nothing, so no controller ever sees it.
    with pytest.raises(client.ApiException) as exc_info:
        apps.read_namespaced_deployment("dry", cp_namespace)
    assert exc_info.value.status == 404
    time.sleep(1)
    assert apps.list_namespaced_replica_set(cp_namespace).items == []
    assert core.list_namespaced_pod(cp_namespace).items == []


def test_invalid_name_is_rejected_with_422(api: client.ApiClient, cp_namespace: str) -> None:
    core = client.CoreV1Api(api)
    with pytest.raises(client.ApiException) as exc_info:
        core.create_namespaced_config_map(cp_namespace, {"metadata": {"name": "Not_A_Valid_Name"}})
    assert exc_info.value.status == 422
    body = json.loads(exc_info.value.body)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_pod_logs_are_served_by_kwok(
    api: client.ApiClient, cp_namespace: str, control_plane: ControlPlane
) -> None:
    core = client.CoreV1Api(api)
    control_plane.set_pod_logs(["first line", "second line"])
    pod = {
        "metadata": {"name": "logger"},
        "spec": {"containers": [{"name": "main", "image": IMAGE, "command": ["echo", "never runs"]}]},
    }
    core.create_namespaced_pod(cp_namespace, pod)
    wait_for(
        lambda: core.read_namespaced_pod("logger", cp_namespace).status.phase == "Running",
        60,
        "pod Running",
    )
    # apiserver -> kwok's kubelet-like server on 127.0.0.1 (TLS verified against the test CA).
    logs = core.read_namespaced_pod_log("logger", cp_namespace, container="main")
    assert logs == "first line\nsecond line\n"


def test_image_pull_error_pod_stays_pending(api: client.ApiClient, cp_namespace: str) -> None:
    core = client.CoreV1Api(api)
    pod = ControlPlane.apply_behaviour(
        {"metadata": {"name": "nopull"}, "spec": {"containers": [{"name": "main", "image": IMAGE}]}},
        "image-pull-error",
    )
    core.create_namespaced_pod(cp_namespace, pod)

    def backing_off():
        p = core.read_namespaced_pod("nopull", cp_namespace)
        cs = (p.status.container_statuses or [None])[0]
        return p if cs and cs.state.waiting and cs.state.waiting.reason == "ImagePullBackOff" else None

    p = wait_for(backing_off, 60, "ImagePullBackOff")
    assert p.status.phase == "Pending"
    assert conditions(p)["Ready"].status == "False"


def test_unschedulable_pod_is_left_pending_by_real_scheduler(
    api: client.ApiClient, cp_namespace: str
) -> None:
    core = client.CoreV1Api(api)
    pod = ControlPlane.apply_behaviour(
        {"metadata": {"name": "stuck"}, "spec": {"containers": [{"name": "main", "image": IMAGE}]}},
        "unschedulable",
    )
    core.create_namespaced_pod(cp_namespace, pod)

    def unschedulable():
        p = core.read_namespaced_pod("stuck", cp_namespace)
        cond = conditions(p).get("PodScheduled")
        return p if cond is not None and cond.reason == "Unschedulable" else None

    p = wait_for(unschedulable, 60, "PodScheduled=False/Unschedulable")
    assert conditions(p)["PodScheduled"].status == "False"
    assert "didn't match Pod's node affinity/selector" in conditions(p)["PodScheduled"].message
    assert p.spec.node_name is None
    assert p.status.phase == "Pending"


def test_bare_pod_labelled_succeed_completes(api: client.ApiClient, cp_namespace: str) -> None:
    core = client.CoreV1Api(api)
    pod = ControlPlane.apply_behaviour(
        {
            "metadata": {"name": "once"},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": IMAGE}]},
        },
        "succeed",
    )
    core.create_namespaced_pod(cp_namespace, pod)
    p = wait_for(
        lambda: (lambda p: p if p.status.phase == "Succeeded" else None)(
            core.read_namespaced_pod("once", cp_namespace)
        ),
        60,
        "pod Succeeded",
    )
    assert p.status.container_statuses[0].state.terminated.reason == "Completed"
