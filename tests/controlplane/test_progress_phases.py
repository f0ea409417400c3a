"""The phases a deploy reports, from the objects the real controllers, scheduler and kwok's kubelet
write: one event per change, a batch stage's attempts numbered through its real retries, a service's
ready count reaching its replicas before the stage ends."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.kube.inventory import delete_pipeline
from bodywork_action.model import Pipeline
from bodywork_action.stage_phase import PodState
from testing.builders import batch, context, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import Behaviours, unique_name

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]


@pytest.fixture
def target(control_plane: ControlPlane) -> KubeTarget:
    return KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))


@pytest.fixture
def deployed(target: KubeTarget) -> Iterator[list[Pipeline]]:
    pipelines: list[Pipeline] = []
    yield pipelines
    for p in pipelines:  # leave the shared control plane as we found it
        delete_pipeline(p, target=target, environ={})


def phases_of(progress: list[Progress], stage: str) -> list[str]:
    return [
        p.phase.describe()
        for p in progress
        if p.kind is ProgressKind.STAGE_PHASE and p.phase is not None and p.stages == (stage,)
    ]


def test_phases_follow_the_real_controllers_one_event_per_change(
    target: KubeTarget, deployed: list[Pipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    Behaviours(monkeypatch).set("train", "fail", exit_code=3)
    p = pipeline("train", batch("train", retries=1), name=unique_name())
    deployed.append(p)
    progress: list[Progress] = []

    result = deploy_pipeline(p, context(), target=target, environ={}, report=progress.append)

    assert not result.succeeded and result.stage("train").attempts == 2
    train = phases_of(progress, "train")
    assert all(a != b for a, b in itertools.pairwise(train)), train
    assert any(line.startswith("attempt 2 of 2") for line in train), train
    assert train[-1] == "attempt 2 of 2: failed (exit code 3)", train
    kinds = [p.kind for p in progress if p.stages == ("train",)]
    assert kinds.index(ProgressKind.STAGE_PHASE) < kinds.index(ProgressKind.STAGE_FINISHED)


def test_a_service_reports_its_ready_count_up_to_its_replicas(
    target: KubeTarget, deployed: list[Pipeline]
) -> None:
    p = pipeline("serve", service("serve", replicas=2), name=unique_name())
    deployed.append(p)
    progress: list[Progress] = []

    result = deploy_pipeline(p, context(), target=target, environ={}, report=progress.append)

    assert result.succeeded, result.one_line()
    serve = [p.phase for p in progress if p.kind is ProgressKind.STAGE_PHASE and p.phase is not None]
    assert serve and serve[-1].state is PodState.READY and (serve[-1].ready, serve[-1].wanted) == (2, 2)
    assert all(phase.ready <= 2 and phase.wanted == 2 for phase in serve), serve
    assert all(a != b for a, b in itertools.pairwise(serve)), serve
