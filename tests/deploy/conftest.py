"""Deploy tests: the real `kubernetes` client over HTTP to the fake API server (testing/fake_k8s)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bodywork_action.executor import Progress
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.model import (
    BatchSettings,
    DeployContext,
    K8sName,
    Pipeline,
    SecretEnv,
    ServiceSettings,
    Stage,
    StageName,
)
from bodywork_action.results import DeploymentResult
from bodywork_action.secret_groups import SecretRequest, SecretSupply, build_secret_supply
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.fixtures import fake_cluster  # noqa: F401

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO_ROOT = Path(__file__).resolve().parents[2]
NAME_LABEL = "app.kubernetes.io/name"


def batch(name: str, *, retries: int = 0, secrets: tuple[tuple[str, str], ...] = ()) -> Stage:
    return Stage(
        name=StageName(name),
        k8s_name=K8sName(name.replace("_", "-")),
        executable_module_path=f"{name}.py",
        cpu_request=0.25,
        memory_request_mb=100,
        settings=BatchSettings(max_completion_time_seconds=60, retries=retries),
        secrets=tuple(SecretEnv(env_var=key, secret=secret) for secret, key in secrets),
    )


def service(name: str, *, ingress: bool = False, replicas: int = 1) -> Stage:
    return Stage(
        name=StageName(name),
        k8s_name=K8sName(name.replace("_", "-")),
        executable_module_path=f"{name}.py",
        cpu_request=0.25,
        memory_request_mb=100,
        settings=ServiceSettings(max_startup_time_seconds=60, replicas=replicas, port=8000, ingress=ingress),
    )


def pipeline(dag: str, *stages: Stage, on_failure: str | None = None, name: str = "demo") -> Pipeline:
    steps = tuple(tuple(StageName(n.strip()) for n in step.split(",")) for step in dag.split(">>"))
    return Pipeline(
        name=name,
        docker_image="python:3.11-slim",
        dag_text=dag,
        steps=steps,
        stages={s.name: s for s in stages},
        run_on_failure=StageName(on_failure) if on_failure else None,
    )


# a >> b,c >> d: batch, (batch, service), service
def four_stage_pipeline(**kwargs: Any) -> Pipeline:
    return pipeline(
        "a >> b,c >> d", batch("a"), batch("b"), service("c"), service("d", ingress=True), **kwargs
    )


def context(deployment_id: str = "run-1") -> DeployContext:
    return DeployContext(
        repository_url="https://github.com/example/project",
        commit=COMMIT,
        ref="refs/heads/main",
        deployment_id=deployment_id,
        restart_token=deployment_id,
    )


# What the MLflow example's two secrets hold in these tests; the password is the canary.
MLFLOW_SECRET_ENV = {
    "MLFLOW_BACKEND_STORE_URI": "postgresql://mlflow:s3cret-password@db:5432/mlflow",
    "MLFLOW_DEFAULT_ARTIFACT_ROOT": "s3://bucket/mlflow",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
    "AWS_SECRET_ACCESS_KEY": "line-one\nline-two",
    "AWS_DEFAULT_REGION": "eu-west-2",
}


def mlflow_secret_supply(group: str = "prod") -> SecretSupply:
    """The MLflow example's secrets, from MLFLOW_SECRET_ENV, as the action would map them."""
    return build_secret_supply(
        [
            SecretRequest("mlflow-config", ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_DEFAULT_ARTIFACT_ROOT")),
            SecretRequest(
                "aws-credentials", ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
            ),
        ],
        [MLFLOW_SECRET_ENV],
        group=group,
    )


class Deployer:
    """Runs deploy_pipeline against one fake cluster, recording progress."""

    def __init__(self, fake: FakeCluster) -> None:
        self.fake = fake
        self.progress: list[Progress] = []
        self.target = KubeTarget(kubeconfig=str(fake.kubeconfig_path))

    def __call__(
        self,
        p: Pipeline,
        *,
        deployment_id: str = "run-1",
        secrets: SecretSupply | None = None,
        cancel: threading.Event | None = None,
        report: Callable[[Progress], None] | None = None,
        **kwargs: Any,
    ) -> DeploymentResult:
        def record(progress: Progress) -> None:
            self.progress.append(progress)
            if report is not None:
                report(progress)

        return deploy_pipeline(
            p,
            context(deployment_id),
            target=self.target,
            secrets=secrets,
            report=record,
            cancel=cancel,
            environ={},
            **kwargs,
        )


@pytest.fixture
def deploy(fake_cluster: FakeCluster) -> Deployer:  # noqa: F811
    return Deployer(fake_cluster)


def names(fake: FakeCluster, kind: str, namespace: str = "demo") -> list[str]:
    return sorted(o["metadata"]["name"] for o in fake.list(kind, namespace))
