"""Wide and long pipelines on the real control plane (the real Job, Deployment and ReplicaSet controllers, the
real scheduler, kwok nodes): every stage reaches its verdict through the deployment's shared watches, one
list and one watch per kind (kube/watch_hub.py), however many stages wait. Correctness only: no timing.

1 x 200 runs in CI (about a minute). 1 x 1,000 and 100 x 10 take several minutes each on 2 cores, so
they run only when asked: ``BODYWORK_SCALE_TESTS=1 pytest tests/controlplane/test_scale_controlplane.py``."""

from __future__ import annotations

import os

import pytest

from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.kube.inventory import delete_pipeline, read_status
from bodywork_action.model import Pipeline, Stage
from bodywork_action.results import StageStatus
from testing.builders import batch, context, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import unique_name

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

ASKED = os.environ.get("BODYWORK_SCALE_TESTS") == "1"
ONLY_WHEN_ASKED = pytest.mark.skipif(
    not ASKED, reason="minutes on 2 cores: set BODYWORK_SCALE_TESTS=1 to run it"
)


def wide_and_long(steps: int, width: int) -> Pipeline:
    """``steps`` steps of ``width`` stages, every 5th a service (as bench/bench_deploy.py scales them)."""
    rows = [[f"s{step:03d}w{column:04d}" for column in range(width)] for step in range(steps)]
    stages: list[Stage] = [
        service(name, startup_seconds=1800) if number % 5 == 4 else batch(name, max_seconds=1800)
        for number, name in enumerate(name for row in rows for name in row)
    ]
    return pipeline(" >> ".join(",".join(row) for row in rows), *stages, name=unique_name())


@pytest.mark.parametrize(
    ("steps", "width"),
    [
        pytest.param(1, 200, id="1x200"),
        pytest.param(1, 1000, id="1x1000", marks=ONLY_WHEN_ASKED),
        pytest.param(100, 10, id="100x10", marks=ONLY_WHEN_ASKED),
    ],
)
def test_a_large_pipeline_deploys_through_the_real_controllers(
    control_plane: ControlPlane, steps: int, width: int
) -> None:
    p = wide_and_long(steps, width)
    target = KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))
    try:
        result = deploy_pipeline(p, context("run-1"), target=target, environ={})

        assert result.succeeded, result.one_line()
        assert [s.status for s in result.stages] == [StageStatus.SUCCEEDED] * (steps * width)
        state = read_status(p, target=target, environ={})
        assert {s.stage: s.status for s in state.stages} == {s.stage: "succeeded" for s in result.stages}
    finally:
        delete_pipeline(p, target=target, environ={})  # the control plane is shared by the session
