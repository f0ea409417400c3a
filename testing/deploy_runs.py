"""Running deploy_pipeline against the fake API server (testing/fake_k8s) and reading back what it made."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

from bodywork_action.executor import Progress, ProgressKind
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
        commit: str = "",
        **kwargs: Any,
    ) -> DeploymentResult:
        def record(progress: Progress) -> None:
            self.progress.append(progress)
            if report is not None:
                report(progress)

        return deploy_pipeline(
            p,
            context(deployment_id, commit=commit) if commit else context(deployment_id),
            target=self.target,
            secrets=secrets,
            report=record,
            cancel=cancel,
            environ={},
            **kwargs,
        )


def names(fake: FakeCluster, kind: str, namespace: str = "demo") -> list[str]:
    return sorted(o["metadata"]["name"] for o in fake.list(kind, namespace))


class ConcurrentRuns:
    """Deploys of one pipeline started side by side, every progress event numbered in one sequence, so
    a test can tell whose steps ran first and what each run printed while it waited for the lock."""

    def __init__(self, target: KubeTarget, *, run_url_prefix: str = "") -> None:
        self.target = target
        self.run_url_prefix = run_url_prefix  # runs get "<prefix><run>" as their run URL
        self.counter = itertools.count()
        self.lock = threading.Lock()
        self.events: dict[str, list[tuple[int, Progress]]] = {}

    def reporter(self, run: str) -> Callable[[Progress], None]:
        def report(progress: Progress) -> None:
            with self.lock:
                self.events.setdefault(run, []).append((next(self.counter), progress))

        return report

    def deploy(self, pipeline: Pipeline, run: str, **kwargs: Any) -> DeploymentResult:
        run_url = f"{self.run_url_prefix}{run}" if self.run_url_prefix else ""
        return deploy_pipeline(
            pipeline,
            context(run, run_url=run_url) if run_url else context(run),
            target=self.target,
            report=self.reporter(run),
            environ={},
            **kwargs,
        )

    def span(self, run: str) -> tuple[int, int]:
        """Sequence numbers of the run's first and last step events."""
        steps = [
            n
            for n, p in self.events[run]
            if p.kind in (ProgressKind.STEP_STARTED, ProgressKind.STEP_FINISHED)
        ]
        return min(steps), max(steps)

    def waits(self, run: str) -> list[str]:
        return [p.detail for _, p in self.events.get(run, []) if p.kind is ProgressKind.WAITING]
