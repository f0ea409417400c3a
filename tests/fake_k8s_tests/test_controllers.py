"""Simulated controllers and kubelet: each scripted scenario's statuses, events and logs."""

from __future__ import annotations

import time

import pytest
from kubernetes.client import ApiException

from testing.fake_k8s import FakeCluster, Scenario
from testing.k8s_objects import cond, deployment, job, service


def _job_done(fake, name, ns="default"):
    j = fake.get("Job", name, ns)
    return (
        j
        if (cond(j, "Complete") or {}).get("status") == "True"
        or (cond(j, "Failed") or {}).get("status") == "True"
        else None
    )


def _reasons(fake, involved):
    return {e["reason"] for e in fake.events("default", involved=involved)}


def test_job_succeeds_by_default_with_events_and_logs(k8s, fake):
    fake.script("Job", "train", Scenario(logs=["epoch 1", "epoch 2", "done"]))
    k8s.batch.create_namespaced_job("default", job("train"))
    j = fake.wait_for(lambda: _job_done(fake, "train"))
    st = j["status"]
    assert st["succeeded"] == 1 and st["active"] == 0 and "failed" not in st
    assert st["startTime"] and st["completionTime"]
    assert cond(j, "Complete")["reason"] == "CompletionsReached"
    assert {"SuccessfulCreate", "Completed"} <= _reasons(fake, "train")
    (pod,) = fake.list("Pod", "default", labels="job-name=train")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert {"Scheduled", "Pulled", "Created", "Started"} <= _reasons(fake, pod["metadata"]["name"])
    ev = fake.events("default", involved="train", reason="Completed")[0]
    assert ev["involvedObject"]["kind"] == "Job" and ev["involvedObject"]["uid"] == j["metadata"]["uid"]
    name = pod["metadata"]["name"]
    assert k8s.core.read_namespaced_pod_log(name, "default") == "epoch 1\nepoch 2\ndone\n"
    assert k8s.core.read_namespaced_pod_log(name, "default", tail_lines=1) == "done\n"


def test_job_fails_k_times_then_succeeds(k8s, fake):
    fake.script("Job", {"team": "ml"}, Scenario(fail_times=2, failure_logs=["boom"], logs=["ok"]))
    k8s.batch.create_namespaced_job("default", job("flaky", labels={"team": "ml"}, backoffLimit=3))
    j = fake.wait_for(lambda: _job_done(fake, "flaky"))
    assert cond(j, "Complete") and j["status"]["failed"] == 2 and j["status"]["succeeded"] == 1
    pods = fake.list("Pod", "default", labels="job-name=flaky")
    phases = sorted(p["status"]["phase"] for p in pods)
    assert phases == ["Failed", "Failed", "Succeeded"]
    failed = next(p for p in pods if p["status"]["phase"] == "Failed")
    term = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert term["exitCode"] == 1 and term["reason"] == "Error"
    assert k8s.core.read_namespaced_pod_log(failed["metadata"]["name"], "default") == "boom\n"


def test_job_exceeding_backoff_limit_fails(k8s, fake):
    fake.script("Job", "bad", Scenario(fail_times=5))
    k8s.batch.create_namespaced_job("default", job("bad", backoffLimit=1))
    j = fake.wait_for(lambda: _job_done(fake, "bad"))
    failed = cond(j, "Failed")
    assert failed["status"] == "True" and failed["reason"] == "BackoffLimitExceeded"
    assert cond(j, "Complete") is None and j["status"]["failed"] == 2
    assert len(fake.list("Pod", "default", labels="job-name=bad")) == 2  # backoffLimit + 1 attempts
    (ev,) = fake.events("default", involved="bad", reason="BackoffLimitExceeded")
    assert ev["type"] == "Warning" and "backoff limit" in ev["message"]


def test_job_that_fails_for_good_with_zero_backoff(k8s, fake):
    fake.script("Job", "never", Scenario(behavior="fail", exit_code=3))
    k8s.batch.create_namespaced_job("default", job("never", backoffLimit=0))
    j = fake.wait_for(lambda: _job_done(fake, "never"))
    assert cond(j, "Failed")["reason"] == "BackoffLimitExceeded"
    (pod,) = fake.list("Pod", "default", labels="job-name=never")
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_job_deadline_exceeded_kills_active_pods(k8s, fake):
    fake.script("Job", "slow", Scenario(behavior="hang"))
    k8s.batch.create_namespaced_job("default", job("slow", activeDeadlineSeconds=2))
    j = fake.wait_for(lambda: _job_done(fake, "slow"))
    assert cond(j, "Failed")["reason"] == "DeadlineExceeded"
    assert fake.list("Pod", "default", labels="job-name=slow") == []
    assert "DeadlineExceeded" in _reasons(fake, "slow")


def test_job_success_after_n_seconds_never_early(k8s, fake):
    fake.script("Job", "timed", Scenario(start_seconds=0, run_seconds=20))  # 20 s * 0.01 = 0.2 s
    t0 = time.monotonic()
    k8s.batch.create_namespaced_job("default", job("timed"))
    fake.wait_for(lambda: _job_done(fake, "timed"))
    assert time.monotonic() - t0 >= 20 * fake.time_scale


def _deploy_ready(fake, name, replicas, ns="default"):
    d = fake.get("Deployment", name, ns)
    st = (d or {}).get("status") or {}
    prog = cond(d, "Progressing") or {}
    if (
        st.get("availableReplicas") == replicas
        and st.get("updatedReplicas") == replicas
        and st.get("replicas") == replicas
        and prog.get("reason") == "NewReplicaSetAvailable"
        and st.get("observedGeneration") == d["metadata"]["generation"]
    ):
        return d
    return None


def test_deployment_becomes_available(k8s, fake):
    k8s.apps.create_namespaced_deployment("default", deployment("web", replicas=3))
    d = fake.wait_for(lambda: _deploy_ready(fake, "web", 3))
    assert d["status"]["readyReplicas"] == 3 and cond(d, "Available")["status"] == "True"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    (rs,) = fake.list("ReplicaSet", "default")
    assert rs["status"]["readyReplicas"] == 3 and rs["metadata"]["ownerReferences"][0]["kind"] == "Deployment"
    pods = fake.list("Pod", "default", labels="app=web")
    assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)
    assert all(cond(p, "Ready")["status"] == "True" for p in pods)
    assert "ScalingReplicaSet" in _reasons(fake, "web")
    # the client reads all of it through its pydantic models
    status = k8s.apps.read_namespaced_deployment_status("web", "default").status
    assert status.available_replicas == 3 and {c.type for c in status.conditions} == {
        "Available",
        "Progressing",
    }
    assert all(p.status.container_statuses[0].ready for p in k8s.core.list_namespaced_pod("default").items)


def test_deployment_ready_after_n_seconds(k8s, fake):
    fake.script("Deployment", "slow", Scenario(start_seconds=0, ready_seconds=20))
    t0 = time.monotonic()
    k8s.apps.create_namespaced_deployment("default", deployment("slow"))
    fake.wait_for(lambda: _deploy_ready(fake, "slow", 1))
    assert time.monotonic() - t0 >= 20 * fake.time_scale


def test_crash_loop(k8s, fake):
    fake.script("Deployment", "app=crashy", Scenario(behavior="crashloop", run_seconds=0, exit_code=2))
    k8s.apps.create_namespaced_deployment("default", deployment("crashy", progressDeadlineSeconds=5))

    def looping():
        pods = fake.list("Pod", "default", labels="app=crashy")
        cs = pods[0]["status"].get("containerStatuses", [{}])[0] if pods else {}
        return cs if cs.get("restartCount", 0) >= 2 and "waiting" in cs.get("state", {}) else None

    cs = fake.wait_for(looping)
    assert cs["state"]["waiting"]["reason"] == "CrashLoopBackOff" and cs["ready"] is False
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    pod = fake.list("Pod", "default", labels="app=crashy")[0]
    backoff = fake.events("default", involved=pod["metadata"]["name"], reason="BackOff")
    assert (
        backoff
        and backoff[0]["type"] == "Warning"
        and "Back-off restarting failed container" in backoff[0]["message"]
    )
    d = fake.wait_for(
        lambda: (
            (cond(fake.get("Deployment", "crashy"), "Progressing") or {}).get("status") == "False"
            and fake.get("Deployment", "crashy")
        )
    )
    assert cond(d, "Progressing")["reason"] == "ProgressDeadlineExceeded"
    assert cond(d, "Available")["status"] == "False" and "availableReplicas" not in d["status"]


def test_image_pull_errors(k8s, fake):
    fake.script("Deployment", "nopull", Scenario(behavior="imagepull", start_seconds=0))
    k8s.apps.create_namespaced_deployment("default", deployment("nopull", image="ghcr.io/x/missing:9"))
    seen = set()

    def both():
        for p in fake.list("Pod", "default", labels="app=nopull"):
            waiting = p["status"].get("containerStatuses", [{}])[0].get("state", {}).get("waiting") or {}
            seen.add(waiting.get("reason"))
        return {"ErrImagePull", "ImagePullBackOff"} <= seen

    fake.wait_for(both)
    pod = fake.list("Pod", "default", labels="app=nopull")[0]
    msgs = [e["message"] for e in fake.events("default", involved=pod["metadata"]["name"], reason="Failed")]
    assert any('Failed to pull image "ghcr.io/x/missing:9"' in m for m in msgs)
    with pytest.raises(ApiException) as err:
        k8s.core.read_namespaced_pod_log(pod["metadata"]["name"], "default")
    assert err.value.status == 400 and "waiting to start" in err.value.body


def test_unschedulable(k8s, fake):
    fake.script("Deployment", "huge", Scenario(behavior="unschedulable"))
    k8s.apps.create_namespaced_deployment("default", deployment("huge"))
    pod = fake.wait_for(
        lambda: [p for p in fake.list("Pod", "default", labels="app=huge") if cond(p, "PodScheduled")]
    )[0]
    sched = cond(pod, "PodScheduled")
    assert sched["status"] == "False" and sched["reason"] == "Unschedulable"
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")
    (ev,) = fake.events("default", involved=pod["metadata"]["name"], reason="FailedScheduling")
    assert ev["type"] == "Warning" and "Insufficient" in ev["message"]
    d = fake.wait_for(
        lambda: cond(fake.get("Deployment", "huge"), "Available") and fake.get("Deployment", "huge")
    )
    assert cond(d, "Available")["status"] == "False"


def test_rollout_scales_old_down_only_after_new_is_ready(k8s, fake):
    k8s.apps.create_namespaced_deployment("default", deployment("web", replicas=2))
    fake.wait_for(lambda: _deploy_ready(fake, "web", 2))
    (old_rs,) = fake.list("ReplicaSet", "default")
    start_rv = fake.store.rv
    k8s.apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}},
    )
    d = fake.wait_for(lambda: _deploy_ready(fake, "web", 2))
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2"
    rss = {r["metadata"]["name"]: r for r in fake.list("ReplicaSet", "default")}
    assert rss[old_rs["metadata"]["name"]]["spec"]["replicas"] == 0 and len(rss) == 2
    new_name = next(n for n in rss if n != old_rs["metadata"]["name"])
    # order of writes: the new ReplicaSet reported 2 ready pods before the old one was scaled to 0
    with fake.store.lock:  # the controllers keep writing; copy the history under the store lock
        history = [e for e in fake.store.history if e.rv > start_rv and e.resource.kind == "ReplicaSet"]
    new_ready = min(
        e.rv
        for e in history
        if e.obj["metadata"]["name"] == new_name and e.obj["status"].get("readyReplicas") == 2
    )
    old_down = min(
        e.rv
        for e in history
        if e.obj["metadata"]["name"] == old_rs["metadata"]["name"] and e.obj["spec"]["replicas"] == 0
    )
    assert new_ready < old_down
    assert all(p["spec"]["containers"][0]["image"] == "app:2" for p in fake.list("Pod", "default"))


def test_failed_rollout_keeps_old_pods_serving_and_rollback_recovers(k8s, fake):
    fake.script("Deployment", "web", Scenario(behavior="crashloop", image="app:2"))
    k8s.apps.create_namespaced_deployment(
        "default", deployment("web", replicas=2, progressDeadlineSeconds=10)
    )
    k8s.core.create_namespaced_service("default", service("web"))
    fake.wait_for(lambda: _deploy_ready(fake, "web", 2))
    v1_template = fake.get("Deployment", "web")["spec"]["template"]
    k8s.apps.patch_namespaced_deployment(
        "web",
        "default",
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}},
    )
    d = fake.wait_for(
        lambda: (
            (cond(fake.get("Deployment", "web"), "Progressing") or {}).get("reason")
            == "ProgressDeadlineExceeded"
            and fake.get("Deployment", "web")
        )
    )
    assert cond(d, "Progressing")["status"] == "False"
    assert cond(d, "Available")["status"] == "True"  # the old pods still serve
    assert d["status"]["availableReplicas"] == 2 and d["status"]["updatedReplicas"] == 2
    images = sorted(p["spec"]["containers"][0]["image"] for p in fake.list("Pod", "default"))
    assert images == ["app:1", "app:1", "app:2", "app:2"]
    assert k8s.core.connect_get_namespaced_service_proxy_with_path("web:80", "default", "health") == "OK"
    # rollback = re-applying the old template: the old ReplicaSet becomes revision 3 and takes over
    body = k8s.client.sanitize_for_serialization(k8s.apps.read_namespaced_deployment("web", "default"))
    body["spec"]["template"] = v1_template
    k8s.apps.replace_namespaced_deployment("web", "default", body)
    d = fake.wait_for(lambda: _deploy_ready(fake, "web", 2))
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "3"
    assert len(fake.list("ReplicaSet", "default")) == 2
    fake.wait_for(
        lambda: (
            sorted(p["spec"]["containers"][0]["image"] for p in fake.list("Pod", "default"))
            == ["app:1", "app:1"]
        )
    )


def test_recreate_strategy_replaces_pods(k8s, fake):
    k8s.apps.create_namespaced_deployment("default", deployment("r", strategy={"type": "Recreate"}))
    fake.wait_for(lambda: _deploy_ready(fake, "r", 1))
    k8s.apps.patch_namespaced_deployment(
        "r", "default", {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "app:2"}]}}}}
    )
    fake.wait_for(
        lambda: (
            _deploy_ready(fake, "r", 1)
            and [p["spec"]["containers"][0]["image"] for p in fake.list("Pod", "default")] == ["app:2"]
        )
    )


def test_pod_logs_per_container_and_init_containers(k8s, fake):
    fake.script("Deployment", "multi", Scenario(logs={"app": ["a1", "a2"], "side": ["s1"], "setup": ["i1"]}))
    d = deployment("multi")
    spec = d["spec"]["template"]["spec"]
    spec["containers"].append({"name": "side", "image": "side:1"})
    spec["initContainers"] = [{"name": "setup", "image": "busybox:1"}]
    k8s.apps.create_namespaced_deployment("default", d)
    fake.wait_for(lambda: _deploy_ready(fake, "multi", 1))
    pod = fake.list("Pod", "default", labels="app=multi")[0]
    name = pod["metadata"]["name"]
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["reason"] == "Completed"
    assert k8s.core.read_namespaced_pod_log(name, "default", container="app") == "a1\na2\n"
    assert k8s.core.read_namespaced_pod_log(name, "default", container="side") == "s1\n"
    assert k8s.core.read_namespaced_pod_log(name, "default", container="setup") == "i1\n"
    assert k8s.core.read_namespaced_pod_log(name, "default", container="app", tail_lines=1) == "a2\n"
    with pytest.raises(ApiException) as err:
        k8s.core.read_namespaced_pod_log(name, "default")
    assert err.value.status == 400 and "container name must be specified" in err.value.body
    with pytest.raises(ApiException) as err:
        k8s.core.read_namespaced_pod_log(name, "default", container="nope")
    assert err.value.status == 400
    assert fake.requests.filter(resource="pods", subresource="log", verb="get")


def test_service_proxy_default_and_scripted(k8s, fake):
    fake.script("Deployment", "api", Scenario(behavior="hang"))
    k8s.core.create_namespaced_service("default", service("api"))
    with pytest.raises(ApiException) as err:
        k8s.core.connect_get_namespaced_service_proxy_with_path("api", "default", "health")
    assert err.value.status == 503  # no Deployment behind it yet
    k8s.apps.create_namespaced_deployment("default", deployment("api"))
    fake.wait_for(lambda: fake.list("Pod", "default", labels="app=api"))
    with pytest.raises(ApiException) as err:
        k8s.core.connect_get_namespaced_service_proxy_with_path("api:80", "default", "healthz")
    assert err.value.status == 503  # pods exist but are not ready
    fake.script("Deployment", "api", Scenario())
    body = k8s.client.sanitize_for_serialization(k8s.apps.read_namespaced_deployment("api", "default"))
    body["spec"]["template"]["metadata"]["annotations"] = {"restartedAt": "now"}
    k8s.apps.replace_namespaced_deployment("api", "default", body)
    fake.wait_for(lambda: _deploy_ready(fake, "api", 1))
    assert k8s.core.connect_get_namespaced_service_proxy_with_path("api:80", "default", "health") == "OK"
    fake.script_service("default", "api", (500, "kaput"))
    with pytest.raises(ApiException) as err:
        k8s.core.connect_get_namespaced_service_proxy_with_path("api", "default", "health")
    assert err.value.status == 500 and err.value.body == "kaput"
    fake.script_service("default", "api", lambda method, path, query, body: (200, f"{method} {path}"))
    assert (
        k8s.core.connect_post_namespaced_service_proxy_with_path("api", "default", "predict")
        == "POST /predict"
    )
    with pytest.raises(ApiException) as err:
        k8s.core.connect_get_namespaced_service_proxy_with_path("missing", "default", "health")
    assert err.value.status == 404
    assert fake.requests.filter(resource="services", subresource="proxy")


def test_zero_delays_are_fast_and_complete():
    with FakeCluster(time_scale=0) as fake:
        fake.create(job("z"))
        fake.create(deployment("zd", replicas=2))
        fake.wait_for(lambda: _job_done(fake, "z") and _deploy_ready(fake, "zd", 2), timeout=5)
        assert fake.internal_errors == []


def test_scenario_file(tmp_path, k8s, fake):
    path = tmp_path / "scenario.yaml"
    path.write_text(
        "scripts:\n"
        "  - {kind: Job, name: a, fail_times: 1, logs: [from file]}\n"
        "  - {kind: Deployment, selector: 'tier=web', behavior: unschedulable, namespace: default}\n"
        "services:\n"
        "  - {name: s, status: 418, body: teapot}\n"
        "faults: {rate_503: 0.0, retry_after: 7}\n"
    )
    fake.load_scenario_file(path)
    assert fake.faults.retry_after == 7
    k8s.batch.create_namespaced_job("default", job("a"))
    j = fake.wait_for(lambda: _job_done(fake, "a"))
    assert j["status"]["failed"] == 1 and j["status"]["succeeded"] == 1
    k8s.core.create_namespaced_service("default", service("s"))
    with pytest.raises(ApiException) as err:
        k8s.core.connect_get_namespaced_service_proxy_with_path("s", "default", "health")
    assert err.value.status == 418 and err.value.body == "teapot"
    d = deployment("w")
    d["metadata"]["labels"]["tier"] = "web"
    k8s.apps.create_namespaced_deployment("default", d)
    pod = fake.wait_for(
        lambda: [p for p in fake.list("Pod", "default", labels="app=w") if cond(p, "PodScheduled")]
    )
    assert cond(pod[0], "PodScheduled")["reason"] == "Unschedulable"
    bad = tmp_path / "bad.yaml"
    bad.write_text("scripts:\n  - {kind: Job, name: a, behaviour: typo}\n")
    with pytest.raises(ValueError, match="unknown scenario fields"):
        fake.load_scenario_file(bad)
    with pytest.raises(ValueError, match="behavior must be one of"):
        Scenario(behavior="explode")
