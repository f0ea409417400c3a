"""One deploy of a pipeline at a time, on a real kube-apiserver: its Lease validation, optimistic
concurrency and MicroTime fields, two deploys started together, a held Lease and a crashed one."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes import client

from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.inventory import delete_pipeline
from bodywork_action.kube.lease import LockTimeout, lease_name
from bodywork_action.results import DeploymentResult
from testing.builders import batch, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import unique_name
from testing.deploy_runs import ConcurrentRuns

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

RUN_URL = "https://github.com/example/project/actions/runs/99/attempts/1"


def create_lease(
    control_plane: ControlPlane, namespace: str, name: str, *, renewed: datetime, duration: int
) -> None:
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": namespace}})
        client.CoordinationV1Api(api).create_namespaced_lease(
            namespace,
            {
                "metadata": {
                    "name": name,
                    "annotations": {
                        "bodywork.dev/holder-run-url": RUN_URL,
                        "bodywork.dev/holder-commit": "fedcba9876543210",
                        "bodywork.dev/holder-command": "deploy",
                    },
                },
                "spec": {
                    "holderIdentity": "other-run@elsewhere",
                    "leaseDurationSeconds": duration,
                    "acquireTime": renewed,
                    "renewTime": renewed,
                },
            },
        )


def read_lease(control_plane: ControlPlane, namespace: str, name: str) -> Any:
    with control_plane.api_client() as api:
        return client.CoordinationV1Api(api).read_namespaced_lease(name, namespace)


def test_two_deploys_started_together_run_one_after_the_other(control_plane: ControlPlane) -> None:
    name = unique_name()
    p = pipeline("train >> serve", batch("train"), service("serve"), name=name)
    runs = ConcurrentRuns(KubeTarget(kubeconfig=str(control_plane.kubeconfig_path)))
    barrier = threading.Barrier(2)

    def deploy(run: str) -> DeploymentResult:
        barrier.wait()
        return runs.deploy(p, run)

    try:
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(deploy, ["run-1", "run-2"])
        assert first.succeeded and second.succeeded, (first.one_line(), second.one_line())
        early, late = sorted(["run-1", "run-2"], key=lambda r: runs.span(r)[0])
        assert runs.span(early)[1] < runs.span(late)[0], (
            "the second run's stages began after the first's ended"
        )
        assert any("waiting for the lock" in w for w in runs.waits(late)), runs.waits(late)
        lease = read_lease(control_plane, name, lease_name(name))
        assert lease.spec.holder_identity in ("", None) and lease.spec.lease_transitions >= 1
    finally:
        delete_pipeline(p, target=runs.target, environ={})


def test_a_held_lease_makes_a_deploy_give_up_naming_the_holder_and_an_abandoned_one_is_taken_over(
    control_plane: ControlPlane,
) -> None:
    name = unique_name()
    p = pipeline("train", batch("train"), name=name)
    runs = ConcurrentRuns(KubeTarget(kubeconfig=str(control_plane.kubeconfig_path)))
    create_lease(control_plane, name, lease_name(name), renewed=datetime.now(timezone.utc), duration=3600)
    try:
        with pytest.raises(LockTimeout) as caught:
            runs.deploy(p, "run-1", lock_timeout_seconds=2)
        message = str(caught.value)
        assert f"deploy by {RUN_URL}" in message and "at commit fedcba987654" in message, message
        assert caught.value.exit_code == 1

        with control_plane.api_client() as api:  # the holder crashes: its Lease is never renewed again
            client.CoordinationV1Api(api).patch_namespaced_lease(
                lease_name(name),
                name,
                {
                    "spec": {
                        "leaseDurationSeconds": 2,
                        "renewTime": datetime.now(timezone.utc) - timedelta(hours=1),
                    }
                },
            )
        result = runs.deploy(p, "run-2", lock_timeout_seconds=60)
        assert result.succeeded, result.one_line()
        assert any("took over the lock" in w for w in runs.waits("run-2")), runs.waits("run-2")
        assert read_lease(control_plane, name, lease_name(name)).spec.lease_transitions == 1
    finally:
        delete_pipeline(p, target=runs.target, environ={}, lock_timeout_seconds=10)
