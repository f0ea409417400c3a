"""An atomic deploy against the real control plane: when its last stage fails, the real Deployment
controller brings the existing service back to the revision it had before the deploy (its old
ReplicaSet serving again), and the service the deploy created is gone."""

from __future__ import annotations

import pytest
from kubernetes import client

from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.kube.inventory import delete_pipeline
from bodywork_action.results import DeploymentStatus, StageStatus
from testing.builders import batch, context, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import Behaviours, unique_name

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

OLD_COMMIT, NEW_COMMIT = "1" * 40, "2" * 40
OLD_IMAGE, NEW_IMAGE = "python:3.11-slim", "python:3.12-slim"
TOKEN = "bodywork.dev/restart-token"


def test_atomic_deploy_restores_the_existing_service_and_removes_the_new_one(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    behaviours = Behaviours(monkeypatch)
    name = unique_name()
    target = KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))
    before = pipeline(
        "train >> serve_a >> check",
        batch("train"),
        service("serve_a", replicas=2),
        batch("check"),
        name=name,
        docker_image=OLD_IMAGE,
    )
    after = pipeline(
        "train >> serve_a, serve_b >> check",
        batch("train"),
        service("serve_a", replicas=2),
        service("serve_b"),
        batch("check"),
        name=name,
        docker_image=NEW_IMAGE,
    )
    try:
        first = deploy_pipeline(before, context("run-1", commit=OLD_COMMIT), target=target, environ={})
        assert first.succeeded, first.one_line()
        behaviours.set("check", "fail", exit_code=3)

        result = deploy_pipeline(
            after, context("run-2", commit=NEW_COMMIT), target=target, environ={}, atomic=True
        )

        assert result.status is DeploymentStatus.FAILED, result.one_line()
        assert result.stage("check").reason == "BackoffLimitExceeded"
        serve_a, serve_b = result.stage("serve_a"), result.stage("serve_b")
        assert serve_a.status is StageStatus.SUCCEEDED and serve_a.rolled_back, serve_a
        assert serve_b.rolled_back and serve_b.rollback_removed, serve_b
        assert not serve_a.rollback_error and not serve_b.rollback_error
        assert "left at their previous revision" in result.one_line()
        with control_plane.api_client() as api:
            apps, core = client.AppsV1Api(api), client.CoreV1Api(api)
            deployment = apps.read_namespaced_deployment("serve-a", name)
            container = deployment.spec.template.spec.containers[0]
            env = {e.name: e.value for e in container.env or []}
            assert (container.image, env["GIT_COMMIT_HASH"]) == (OLD_IMAGE, OLD_COMMIT)
            assert deployment.spec.template.metadata.annotations[TOKEN] == "run-1"
            assert deployment.metadata.annotations["bodywork.dev/commit"] == OLD_COMMIT
            assert deployment.metadata.annotations["bodywork.dev/rolled-back-from"] == "run-2"
            # The restored rollout was waited for: the controller reports it complete and available.
            status = deployment.status
            assert (status.updated_replicas, status.available_replicas, status.replicas) == (2, 2, 2)
            serving = [
                rs
                for rs in apps.list_namespaced_replica_set(
                    name, label_selector="app.kubernetes.io/name=serve-a"
                ).items
                if rs.spec.replicas
            ]
            assert [rs.spec.template.metadata.annotations[TOKEN] for rs in serving] == ["run-1"]
            for read in (apps.read_namespaced_deployment, core.read_namespaced_service):
                with pytest.raises(client.ApiException) as gone:
                    read("serve-b", name)
                assert gone.value.status == 404
    finally:
        delete_pipeline(after, target=target, environ={})
