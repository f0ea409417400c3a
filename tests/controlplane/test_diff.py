"""diff against a real control plane: the real apiserver's defaults and the real controllers' writes
(Job selectors and labels, the Deployment's revision annotation, Service IPs, Secret stringData) are
what the normalisation must see through, so a redeploy with no change diffs empty here or nowhere."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bodywork_action import diffing
from bodywork_action.diffing import KeyState, ObjectState
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.kube.diff import diff_pipeline
from bodywork_action.kube.inventory import delete_pipeline
from bodywork_action.model import Pipeline
from bodywork_action.result_document import diff_document, format_document
from bodywork_action.secret_groups import SecretRequest, SecretSupply, build_secret_supply
from testing.builders import batch, context, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import unique_name

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

SECRET_ENV = {"DB_PASSWORD": "db-password-canary-0001", "API_TOKEN": "api-token-canary-0002"}


def supply(env: dict[str, str]) -> SecretSupply:
    return build_secret_supply([SecretRequest("credentials", tuple(env))], [env], group="test")


def two_stages(name: str, *, cpu: float = 0.25) -> Pipeline:
    secrets = [("credentials", key) for key in SECRET_ENV]
    return pipeline(
        "train >> serve",
        batch("train", secrets=secrets),
        service("serve", ingress=True, cpu_request=cpu, secrets=secrets),
        name=name,
    )


@pytest.fixture
def deployed(control_plane: ControlPlane) -> Iterator[tuple[KubeTarget, Pipeline]]:
    """A pipeline deployed once (with its Secret), removed afterwards."""
    target = KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))
    p = two_stages(unique_name())
    try:
        result = deploy_pipeline(p, context("run-1"), target=target, secrets=supply(SECRET_ENV), environ={})
        assert result.succeeded, result.one_line()
        yield target, p
    finally:
        delete_pipeline(p, target=target, environ={})


def test_a_redeploy_with_no_change_diffs_empty_on_the_real_apiserver(
    deployed: tuple[KubeTarget, Pipeline],
) -> None:
    target, p = deployed
    later = context("run-2", run_url="https://github.com/o/r/actions/runs/2", actor="someone-else")

    diff = diff_pipeline(p, later, target=target, secrets=supply(SECRET_ENV), environ={})

    assert diff.changes == 0, diffing.format_diff_text(diff)
    assert [(obj.kind, obj.state) for obj in diff.objects] == [
        ("Secret", ObjectState.UNCHANGED),
        ("Job", ObjectState.UNCHANGED),
        ("Deployment", ObjectState.UNCHANGED),
        ("Service", ObjectState.UNCHANGED),
        ("Ingress", ObjectState.UNCHANGED),
    ]
    assert diff.objects[1].notes[0].startswith("would run again (compared with Job/train-")


def test_a_cpu_change_a_rotated_secret_and_a_removed_stage_diff_as_expected(
    deployed: tuple[KubeTarget, Pipeline],
) -> None:
    target, p = deployed
    rotated = {**SECRET_ENV, "API_TOKEN": "api-token-rotated-canary-0003"}

    changed = diff_pipeline(
        two_stages(p.name, cpu=1),
        context("run-2"),
        target=target,
        secrets=supply(rotated),
        environ={},
    )
    removed = diff_pipeline(
        pipeline("train", batch("train", secrets=[("credentials", k) for k in SECRET_ENV]), name=p.name),
        context("run-3"),
        target=target,
        secrets=supply(SECRET_ENV),
        environ={},
    )

    by_title = {obj.title: obj for obj in changed.objects}
    assert {title: obj.state.value for title, obj in by_title.items() if obj.kind != "Job"} == {
        "Secret/credentials": "changed",
        "Deployment/serve": "changed",
        "Service/serve": "unchanged",
        "Ingress/serve": "unchanged",
    }
    assert dict(by_title["Secret/credentials"].keys) == {
        "API_TOKEN": KeyState.CHANGED,
        "DB_PASSWORD": KeyState.UNCHANGED,
    }
    deployment_lines = [line for line in by_title["Deployment/serve"].diff.splitlines() if line[:1] in "+-"]
    assert deployment_lines == [
        "--- live/Deployment/serve",
        "+++ deploy/Deployment/serve",
        "-            cpu: 250m",
        "+            cpu: '1'",
    ]
    assert next(obj for obj in changed.objects if obj.kind == "Job").state is ObjectState.UNCHANGED
    text = diffing.format_diff_text(changed) + format_document(diff_document(changed, exit_code=0))
    assert not any(value in text for value in [*SECRET_ENV.values(), *rotated.values()])

    assert sorted(obj.title for obj in removed.objects if obj.state is ObjectState.DELETED) == [
        "Deployment/serve",
        "Ingress/serve",
        "Service/serve",
    ]
    assert removed.changes == 3
