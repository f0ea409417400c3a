"""The overrides against a real kube-apiserver: a Job and a Deployment with a GPU, a digest image and
image pull secrets pass its validation (server-side dry run); the same Job without the GPU limit, or
with a fractional GPU, is refused by it, which is why the GPU is rendered into limits too and counted
in whole units."""

from __future__ import annotations

import copy

import pytest

from bodywork_action.kube.client import ClusterError, KubeTarget, connect_cluster
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.model import Pipeline, ResourceOverride, StageName
from bodywork_action.plan import render_plan
from bodywork_action.results import StageStatus
from testing.builders import batch, context, pipeline, service
from testing.cluster.launcher import ControlPlane

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

GPU = "nvidia.com/gpu"
OVERRIDES = {
    "image": "ghcr.io/owner/trainer@sha256:" + "ab" * 32,
    "image_pull_secrets": ("ghcr-pull",),
    "resource_overrides": (
        ResourceOverride(StageName("serve"), GPU, "2"),
        ResourceOverride(StageName("serve"), "memory", "2Gi"),
    ),
}


def gpu_pipeline() -> Pipeline:
    return pipeline("train >> serve", batch("train", extra_resources=((GPU, "1"),)), service("serve"))


def test_the_api_server_accepts_gpus_digest_images_and_pull_secrets(
    control_plane: ControlPlane, cp_namespace: str
) -> None:
    result = deploy_pipeline(
        gpu_pipeline(),
        context(namespace=cp_namespace, **OVERRIDES),
        target=KubeTarget(kubeconfig=str(control_plane.kubeconfig_path)),
        dry_run=True,
        environ={},
    )

    assert result.succeeded, result.one_line()
    for stage in result.stages:
        assert stage.status is StageStatus.PENDING
        assert stage.message.startswith("dry run: accepted by the API server"), stage.message


@pytest.mark.parametrize(
    ("change", "refusal"),
    [
        ("drop the limit", "Limit must be set for non overcommitable resources"),
        ("half a GPU", "must be an integer"),
    ],
)
def test_the_api_server_refuses_a_gpu_without_its_limit_or_in_fractions(
    control_plane: ControlPlane, cp_namespace: str, change: str, refusal: str
) -> None:
    plan = render_plan(gpu_pipeline(), context(namespace=cp_namespace, **OVERRIDES))
    job = copy.deepcopy(plan.for_stage(StageName("train")).require("Job"))
    resources = job["spec"]["template"]["spec"]["containers"][0]["resources"]
    if change == "drop the limit":
        del resources["limits"]
    else:
        resources["requests"][GPU] = resources["limits"][GPU] = "500m"
    cluster = connect_cluster(KubeTarget(kubeconfig=str(control_plane.kubeconfig_path)), environ={})
    try:
        with pytest.raises(ClusterError) as refused:
            cluster.create_object(job, dry_run=True)
    finally:
        cluster.close()
    assert refusal in str(refused.value)
