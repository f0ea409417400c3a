"""A deploy with the overrides, through the real client and the fake API server: the image, the pull
secrets and the GPU reach the live pods; a pull secret missing from the namespace is a warning."""

from __future__ import annotations

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.model import ResourceOverride, StageName
from bodywork_action.overrides import apply_overrides
from testing.builders import batch, context, pipeline, service
from testing.deploy_runs import NAME_LABEL
from testing.fake_k8s.cluster import FakeCluster

DIGEST_IMAGE = "ghcr.io/owner/trainer@sha256:" + "ab" * 32
GPU = "nvidia.com/gpu"


def test_the_live_pod_templates_and_pods_carry_the_overrides(fake_cluster: FakeCluster) -> None:
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "ghcr-pull", "namespace": "demo"},
            "type": "kubernetes.io/dockerconfigjson",
            "data": {".dockerconfigjson": "e30="},
        }
    )
    demo = pipeline("train >> serve", batch("train", extra_resources=((GPU, "1"),)), service("serve"))
    resources = (ResourceOverride(StageName("serve"), GPU, "2"),)
    progress: list[Progress] = []

    result = deploy_pipeline(
        apply_overrides(demo, image=DIGEST_IMAGE, resources=resources),
        context(
            image=DIGEST_IMAGE, image_pull_secrets=("ghcr-pull", "regcred"), resource_overrides=resources
        ),
        target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        report=progress.append,
        environ={},
    )

    assert result.succeeded, result.one_line()
    (job,) = fake_cluster.list("Job", "demo")
    deployment = fake_cluster.get("Deployment", "serve", "demo")
    assert deployment is not None
    expected_gpus = {"train": "1", "serve": "2"}  # bodywork.yaml's for train; the override for serve
    for stage, owner in (("train", job), ("serve", deployment)):
        live_pods = fake_cluster.list("Pod", "demo", labels=f"{NAME_LABEL}={stage}")
        assert live_pods, f"no pod of {stage}"
        for pod_spec in [owner["spec"]["template"]["spec"], *(pod["spec"] for pod in live_pods)]:
            assert pod_spec["imagePullSecrets"] == [{"name": "ghcr-pull"}, {"name": "regcred"}]
            (container,) = pod_spec["containers"]
            assert container["image"] == DIGEST_IMAGE
            assert container["resources"]["limits"] == {GPU: expected_gpus[stage]}
            assert container["resources"]["requests"][GPU] == expected_gpus[stage]
    warnings = [p.detail for p in progress if p.kind is ProgressKind.WARNING]
    assert warnings == [
        "warning: image pull secret regcred not found in namespace demo: pods pulling from a private "
        "registry will sit in ImagePullBackOff until it exists"
    ]


def test_no_warning_and_no_extra_read_without_pull_secrets(fake_cluster: FakeCluster) -> None:
    progress: list[Progress] = []
    result = deploy_pipeline(
        pipeline("train", batch("train")),
        context(),
        target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        report=progress.append,
        environ={},
    )
    assert result.succeeded, result.one_line()
    assert not [p for p in progress if p.kind is ProgressKind.WARNING]
    assert fake_cluster.requests.count(verb="get", resource="secrets") == 0
