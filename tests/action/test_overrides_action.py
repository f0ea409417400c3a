"""The inputs image, image-pull-secrets and resources through entrypoint.py against the fake API server."""

from __future__ import annotations

from pathlib import Path

from testing.action_runs import Runner
from testing.fake_k8s.cluster import FakeCluster

DIGEST_IMAGE = "ghcr.io/owner/trainer@sha256:" + "ab" * 32
SECRETS = {"secrets": "db-credentials: DB_PASSWORD, TLS_KEY"}
SECRET_ENV = {"DB_PASSWORD": "not-a-real-password", "TLS_KEY": "not-a-real-key"}


def test_a_deploy_runs_the_given_image_with_pull_secrets_and_a_gpu(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(
        two_stage_workspace,
        {
            "kubeconfig": Path(fake_cluster.kubeconfig_path).read_text(),
            "image": DIGEST_IMAGE,
            "image-pull-secrets": "ghcr-pull",
            "resources": "train: nvidia.com/gpu=1",
            **SECRETS,
        },
        SECRET_ENV,
    )

    assert run.returncode == 0, run.stdout + run.stderr
    (job,) = fake_cluster.list("Job", "two-stage")
    pod = job["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == DIGEST_IMAGE
    assert pod["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert pod["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    deployment = fake_cluster.get("Deployment", "serve", "two-stage")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "ghcr-pull"}]
    assert DIGEST_IMAGE in run.summary  # the job summary names the image that ran
    (warning,) = run.annotations("warning")
    assert "image pull secret ghcr-pull not found in namespace two-stage" in warning


def test_a_resource_for_an_unknown_stage_is_exit_2_before_the_cluster_is_touched(
    run_action: Runner, two_stage_workspace: Path, fake_cluster: FakeCluster
) -> None:
    run = run_action(
        two_stage_workspace,
        {
            "kubeconfig": Path(fake_cluster.kubeconfig_path).read_text(),
            "resources": "trian: nvidia.com/gpu=1",
        },
    )

    assert run.returncode == 2, run.stdout + run.stderr
    (annotation,) = run.annotations()
    assert "stage 'trian' is not defined in bodywork.yaml; did you mean 'train'?" in annotation
    assert run.outputs["status"] == "error"
    assert fake_cluster.requests.count() == 0
