"""Deploys of the 4-stage DAG through an API server that fails a share of requests, each checked
object by object (used by tests/deploy/test_faults_and_outages.py and bench/bench_faults.py).

"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field

from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.model import Pipeline
from bodywork_action.results import DeploymentResult, StageStatus
from testing.builders import (
    MLFLOW_SECRET_ENV,
    batch,
    context,
    mlflow_secret_supply,
    pipeline,
    service,
)
from testing.fake_k8s.cluster import FakeCluster

NAMESPACE = "demo"


def faulty_pipeline() -> Pipeline:
    """a >> b,c >> d: a and b batch (a reads a secret), c and d services (d with an Ingress)."""
    return pipeline(
        "a >> b,c >> d",
        batch("a", secrets=(("mlflow-config", "MLFLOW_BACKEND_STORE_URI"),)),
        batch("b"),
        service("c"),
        service("d", ingress=True),
    )


def set_fault_rate(fake: FakeCluster, rate: float, *, seed: int, watch_cut_after: int | None = 20) -> None:
    """``rate`` of all resource requests fail, split evenly over 429, 500, 503 and dropped connections;
    every watch stream is cut after ``watch_cut_after`` events."""
    faults = fake.faults
    faults.seed = seed
    faults.reset()
    faults.retry_after = 0
    faults.rate_429 = faults.rate_500 = faults.rate_503 = faults.rate_drop = rate / 4
    faults.watch_cut_after = watch_cut_after


@dataclass
class Check:
    result: DeploymentResult
    problems: list[str] = field(default_factory=list)
    faults_fired: int = 0

    @property
    def correct(self) -> bool:
        return not self.problems


def check_deploy(fake: FakeCluster, result: DeploymentResult) -> Check:
    """Right result, right objects, no duplicates, secrets intact."""
    check = Check(result, faults_fired=sum(1 for r in fake.requests if r.fault))
    problems = check.problems
    if not result.succeeded:
        problems.append(f"deploy did not succeed: {result.one_line()}")
    for stage in ("a", "b", "c", "d"):
        if result.stage(stage).status is not StageStatus.SUCCEEDED:
            problems.append(f"stage {stage}: {result.stage(stage).status.value}")
    jobs = fake.list("Job", NAMESPACE)
    by_stage: dict[str, int] = {}
    for job in jobs:
        stage = job["metadata"]["labels"]["app.kubernetes.io/name"]
        by_stage[stage] = by_stage.get(stage, 0) + 1
    if by_stage != {"a": 1, "b": 1}:
        problems.append(f"Jobs per stage {by_stage}, expected one each for a and b")
    created = [r for r in fake.requests.filter(verb="create", resource="jobs") if r.status == 201]
    if len(created) != 2:
        problems.append(f"{len(created)} Job creates succeeded, expected 2")
    for kind, wanted in (("Deployment", ["c", "d"]), ("Service", ["c", "d"]), ("Ingress", ["d"])):
        found = sorted(o["metadata"]["name"] for o in fake.list(kind, NAMESPACE))
        if found != wanted:
            problems.append(f"{kind}s {found}, expected {wanted}")
    secret = fake.get("Secret", "mlflow-config", NAMESPACE)
    expected = {
        key: base64.b64encode(MLFLOW_SECRET_ENV[key].encode()).decode()
        for key in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_DEFAULT_ARTIFACT_ROOT")
    }
    if secret is None or secret.get("data") != expected:
        problems.append("secret mlflow-config is missing or does not hold the supplied values")
    return check


def deploy_with_faults(rate: float, *, seed: int, deployment_id: str = "run-1") -> Check:
    """One fresh fake, ``rate`` faults from the first request on, one deploy, checked."""
    # 0.05: a scripted second lasts 50 ms, and the 60-s progress deadline 3 s (enough under load)
    fake = FakeCluster(time_scale=0.05, bookmark_interval=0.2)
    fake.start()
    try:
        set_fault_rate(fake, rate, seed=seed)
        result = deploy_pipeline(
            faulty_pipeline(),
            context(deployment_id),
            target=KubeTarget(kubeconfig=str(fake.kubeconfig_path)),
            secrets=mlflow_secret_supply(),
            environ={},
            timeout_seconds=120,
        )
        fake.faults.reset()
        check = check_deploy(fake, result)
        if fake.internal_errors:
            check.problems.append(f"the fake hit internal errors: {fake.internal_errors!r}")
        return check
    finally:
        fake.stop()
