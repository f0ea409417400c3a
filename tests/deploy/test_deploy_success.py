"""Successful deployments: the 4-stage DAG (ordering, concurrency, objects) and the MLflow example."""

from __future__ import annotations

import base64
from pathlib import Path

from bodywork_action.config import load_pipeline
from bodywork_action.executor import ProgressKind
from bodywork_action.results import StageStatus
from testing.builders import four_stage_pipeline, mlflow_secret_supply
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_four_stage_dag_runs_steps_in_order_and_stages_of_a_step_together(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    # b runs long enough that c (same step) must start and finish while b is still running.
    # 500 scripted seconds = 5 s at the fixture's time scale: room for c's rollout on a loaded machine.
    fake_cluster.script("Job", {NAME_LABEL: "b"}, {"run_seconds": 500})
    result = deploy(four_stage_pipeline())

    assert result.succeeded, result.one_line()
    order = [
        (p.kind, p.stages)
        for p in deploy.progress
        if p.kind in (ProgressKind.STAGE_STARTED, ProgressKind.STAGE_FINISHED)
    ]
    position = {entry: i for i, entry in enumerate(order)}
    started = lambda s: position[(ProgressKind.STAGE_STARTED, (s,))]  # noqa: E731
    finished = lambda s: position[(ProgressKind.STAGE_FINISHED, (s,))]  # noqa: E731
    assert finished("a") < started("b") and finished("a") < started("c")
    assert started("c") < finished("b") and finished("c") < finished("b")
    assert max(finished("b"), finished("c")) < started("d")
    assert [r.status for r in result.stages] == [StageStatus.SUCCEEDED] * 4

    assert [j.split("-")[0] for j in names(fake_cluster, "Job")] == ["a", "b"]
    assert names(fake_cluster, "Deployment") == ["c", "d"]
    assert names(fake_cluster, "Service") == ["c", "d"]
    assert names(fake_cluster, "Ingress") == ["d"]
    assert result.stage("c").url == "http://c.demo.svc.cluster.local:8000"
    assert result.stage("d").ingress_path == "/demo/d"
    assert result.stage("a").attempts == 1
    namespace = fake_cluster.get("Namespace", "demo", None)
    assert namespace is not None
    assert namespace["metadata"]["annotations"]["bodywork.dev/created-for-pipeline"] == "demo"


def test_waiting_is_by_watching_never_by_repeated_reads(deploy: Deployer, fake_cluster: FakeCluster) -> None:
    fake_cluster.script("Deployment", "c", {"ready_seconds": 50})
    result = deploy(four_stage_pipeline())

    assert result.succeeded
    jobs_and_deployments = [
        r for r in fake_cluster.requests if r.resource in ("jobs", "deployments", "pods") and r.verb == "get"
    ]
    assert jobs_and_deployments == []
    # one list and one watch per kind for the whole deployment, shared by its stages (watch_hub.py)
    for resource in ("jobs", "deployments", "pods"):
        assert fake_cluster.requests.count(verb="list", resource=resource) == 1, resource
        assert fake_cluster.requests.count(verb="watch", resource=resource) == 1, resource


def test_mlflow_example_deploys_with_its_secrets(deploy: Deployer, fake_cluster: FakeCluster) -> None:
    pipeline = load_pipeline(Path(REPO_ROOT / "bodywork.yaml"))
    result = deploy(pipeline, secrets=mlflow_secret_supply())

    assert result.succeeded, result.one_line()
    assert result.stage("server").url == "http://server.bodywork-mlflow.svc.cluster.local:5000"
    secret = fake_cluster.get("Secret", "aws-credentials", "bodywork-mlflow")
    assert secret is not None
    assert base64.b64decode(secret["data"]["AWS_SECRET_ACCESS_KEY"]).decode() == "line-one\nline-two"
    assert secret["metadata"]["labels"]["bodywork.dev/secret-group"] == "prod"
    deployment = fake_cluster.get("Deployment", "server", "bodywork-mlflow")
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e}
    assert refs["AWS_SECRET_ACCESS_KEY"] == {
        "name": "aws-credentials",
        "key": "AWS_SECRET_ACCESS_KEY",
        "optional": False,
    }
    assert "s3cret-password" not in repr(result)
