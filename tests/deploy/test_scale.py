"""Wide and long pipelines on the fake API server: 1 × 200, 1 × 1,000 and 100 × 10 stages deploy correctly,
with one list and one watch per kind for the whole deployment (kube/watch_hub.py) and at most two requests
per stage besides them. Correctness only: no timing is asserted."""

from __future__ import annotations

import threading

import pytest

from bodywork_action.model import Stage
from bodywork_action.results import StageStatus
from testing.builders import batch, pipeline, service
from testing.deploy_runs import Deployer, names
from testing.fake_k8s.cluster import FakeCluster


def _wide_and_long(steps: int, width: int) -> tuple[str, list[Stage]]:
    """``steps`` steps of ``width`` stages, every 5th a service (as bench/bench_deploy.py scales them)."""
    stages: list[Stage] = []
    dag: list[str] = []
    for step in range(steps):
        row = [f"s{step:03d}w{column:04d}" for column in range(width)]
        dag.append(",".join(row))
        for number, name in enumerate(row):
            index = step * width + number
            # Deadlines long enough for the fake's scaled clock (time_scale 0.01) under a thousand stages.
            stages.append(
                service(name, startup_seconds=6000) if index % 5 == 4 else batch(name, max_seconds=6000)
            )
    return " >> ".join(dag), stages


@pytest.mark.parametrize(
    ("steps", "width"), [(1, 200), (1, 1000), (100, 10)], ids=["1x200", "1x1000", "100x10"]
)
def test_a_large_pipeline_deploys_with_one_watch_per_kind(
    deploy: Deployer, fake_cluster: FakeCluster, steps: int, width: int
) -> None:
    dag, stages = _wide_and_long(steps, width)
    watch_threads: list[int] = []

    def count_watch_threads(_: object) -> None:
        watch_threads.append(sum(t.name.startswith("watch-") for t in threading.enumerate()))

    result = deploy(pipeline(dag, *stages), report=count_watch_threads)

    assert result.succeeded, result.one_line()
    assert [s.status for s in result.stages] == [StageStatus.SUCCEEDED] * len(stages)
    services = [s.name for s in stages if s.service is not None]
    assert len(names(fake_cluster, "Job")) == len(stages) - len(services)
    assert names(fake_cluster, "Deployment") == sorted(services)
    for resource in ("jobs", "deployments", "pods"):
        assert fake_cluster.requests.count(verb="list", resource=resource) == 1, resource
        assert fake_cluster.requests.count(verb="watch", resource=resource) == 1, resource
    # Per stage: its create (a service's Service too); nothing re-read, no watch or list of its own.
    stage_requests = [
        r
        for r in fake_cluster.requests
        if r.resource in ("jobs", "deployments", "services", "pods") and r.verb not in ("list", "watch")
    ]
    assert len(stage_requests) <= 2 * len(stages)
    assert max(watch_threads) <= 3  # one pumping thread per kind, however many stages
