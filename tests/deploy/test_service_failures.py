"""Service rollouts that fail: fast, with the reason, and rolled back to what was serving."""

from __future__ import annotations

from bodywork_action.results import StageStatus
from testing.builders import batch, pipeline, service
from testing.deploy_runs import Deployer, names
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.controllers import is_ready

TOKEN = "bodywork.dev/restart-token"


def serving_tokens(fake: FakeCluster, stage: str) -> set[str]:
    return {
        p["metadata"]["annotations"][TOKEN]
        for p in fake.list("Pod", "demo")
        if p["metadata"]["labels"].get("app.kubernetes.io/name") == stage and is_ready(p)
    }


def test_crash_looping_service_fails_fast_and_rolls_back_while_the_old_revision_serves(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = pipeline(
        "prep >> serve",
        batch("prep"),
        service("serve", replicas=2),
        batch("on_fail"),
        run_on_failure="on_fail",
    )
    assert deploy(p, deployment_id="run-1").succeeded
    fake_cluster.script(
        "Deployment", "serve", {"behavior": "crashloop", "failure_logs": ["boom: no model file"]}
    )

    result = deploy(p, deployment_id="run-2")

    serve = result.stage("serve")
    assert (serve.status, serve.reason, serve.rolled_back) == (StageStatus.FAILED, "CrashLoopBackOff", True)
    assert "rolled back" in serve.message
    assert any("boom: no model file" in lines for lines in serve.logs.values())
    deployment = fake_cluster.get("Deployment", "serve", "demo")
    assert deployment is not None
    assert deployment["spec"]["template"]["metadata"]["annotations"][TOKEN] == "run-1"
    assert deployment["metadata"]["annotations"]["bodywork.dev/rolled-back-from"] == "run-2"
    assert serving_tokens(fake_cluster, "serve") == {"run-1"}
    assert [r.stage for r in result.stages if r.run_on_failure] == ["on_fail"]


def test_service_whose_image_cannot_be_pulled_fails_with_the_reason_and_is_removed_when_new(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Deployment", "serve", {"behavior": "imagepull"})
    result = deploy(pipeline("serve", service("serve")))

    serve = result.stage("serve")
    assert serve.status is StageStatus.FAILED
    assert serve.reason in ("ErrImagePull", "ImagePullBackOff")
    assert serve.rolled_back
    assert names(fake_cluster, "Deployment") == []
    assert names(fake_cluster, "Service") == []


def test_unschedulable_service_fails_fast(deploy: Deployer, fake_cluster: FakeCluster) -> None:
    fake_cluster.script("Deployment", "serve", {"behavior": "unschedulable"})
    result = deploy(pipeline("serve", service("serve")))
    assert result.stage("serve").reason == "Unschedulable"


def test_failing_smoke_test_fails_the_stage_and_rolls_back(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    p = pipeline("serve", service("serve"))
    assert deploy(p, deployment_id="run-1", smoke_tests={"serve": "/health"}).succeeded
    fake_cluster.script_service("demo", "serve", (500, "model not loaded"))

    result = deploy(p, deployment_id="run-2", smoke_tests={"serve": "/health"})

    serve = result.stage("serve")
    assert (serve.status, serve.reason, serve.rolled_back) == (StageStatus.FAILED, "SmokeTestFailed", True)
    assert "500" in serve.message
    proxied = fake_cluster.requests.filter(subresource="proxy")
    assert proxied and all(r.path.endswith("/services/serve:8000/proxy/health") for r in proxied)
