"""A 200-stage step on the real control plane (the real Job, Deployment and ReplicaSet controllers, the real
scheduler, kwok nodes): every stage reaches its verdict through the deployment's shared watches, one list
and one watch per kind (kube/watch_hub.py), however many stages wait. Correctness only: no timing."""

from __future__ import annotations

from collections.abc import Iterator

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

WIDTH = 200


@pytest.fixture
def wide_pipeline(control_plane: ControlPlane) -> Iterator[tuple[Pipeline, KubeTarget]]:
    """One step of 200 stages, every 5th a service; removed from the shared control plane afterwards."""
    names = [f"s{number:03d}" for number in range(WIDTH)]
    stages: list[Stage] = [
        service(name, startup_seconds=600) if number % 5 == 4 else batch(name, max_seconds=600)
        for number, name in enumerate(names)
    ]
    p = pipeline(",".join(names), *stages, name=unique_name())
    target = KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))
    yield p, target
    delete_pipeline(p, target=target, environ={})


def test_two_hundred_stages_in_one_step_deploy_through_the_real_controllers(
    wide_pipeline: tuple[Pipeline, KubeTarget],
) -> None:
    p, target = wide_pipeline

    result = deploy_pipeline(p, context("run-1"), target=target, environ={})

    assert result.succeeded, result.one_line()
    assert [s.status for s in result.stages] == [StageStatus.SUCCEEDED] * WIDTH
    state = read_status(p, target=target, environ={})
    assert {s.stage: s.status for s in state.stages} == {s.stage: "succeeded" for s in result.stages}
