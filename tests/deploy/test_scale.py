"""Wide and long pipelines on the fake API server: 1 × 200, 1 × 1,000 and 100 × 10 stages deploy correctly,
with one list and one watch per kind for the whole deployment (kube/watch_hub.py), at most two requests
per stage besides them, and as many threads for 1,000 stages as for 10. Correctness only: no timing is
asserted."""

from __future__ import annotations

import threading

import pytest

from bodywork_action.kube.deploy import STAGE_WORKERS
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
    tool_threads: list[int] = []
    earlier = {t.ident for t in threading.enumerate()}  # e.g. an earlier test's watch, still closing

    def count_threads(_: object) -> None:
        threads = [t for t in threading.enumerate() if t.ident not in earlier]
        watch_threads.append(sum(t.name.startswith("watch-") for t in threads))
        # the deploy's own: all but the in-process fake API server's (its loop and one per connection)
        tool_threads.append(
            sum(not t.name.startswith("fake-k8s") and "_serve_connection" not in t.name for t in threads)
        )

    result = deploy(pipeline(dag, *stages), report=count_threads)

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
    assert max(watch_threads) <= 4  # one pumping thread per kind and one dispatcher, however many stages
    # No thread per stage: the stage workers, those four and the lease's renewal.
    assert max(tool_threads) <= STAGE_WORKERS + 4 + 1, max(tool_threads)
