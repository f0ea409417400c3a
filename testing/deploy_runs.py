"""Running deploy_pipeline against the fake API server (testing/fake_k8s) and reading back what it made."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from bodywork_action.executor import Progress
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.model import Pipeline
from bodywork_action.results import DeploymentResult
from bodywork_action.secret_groups import SecretSupply
from testing.builders import context
from testing.fake_k8s.cluster import FakeCluster

NAME_LABEL = "app.kubernetes.io/name"


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


def names(fake: FakeCluster, kind: str, namespace: str = "demo") -> list[str]:
    return sorted(o["metadata"]["name"] for o in fake.list(kind, namespace))
