"""The deploy engine against a real control plane: kube-apiserver + etcd, the real Job, Deployment,
ReplicaSet and namespace controllers, the real scheduler, and kwok's simulated kubelet.

What this tier proves that the fake API server cannot: our objects are accepted by a real apiserver
(admission, defaulting, validation); the conditions and events we wait for are the ones the real
controllers write (Job ``Complete``/``Failed`` with ``BackoffLimitExceeded`` after real retries,
Deployment availability, ``FailedScheduling`` from the real scheduler); the watches we rely on
(resourceVersion resume, bookmarks) are the apiserver's; rollback leaves the real ReplicaSet of the
previous revision serving. What it does not prove: no container runs (kwok writes pod status from
the label the test sets, see testing/cluster/stages.yaml), so the stage's code, git-sync, probes and
the service proxy are not exercised here (the local runner and the fake's kubelet cover those).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from bodywork_action.config import load_pipeline
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.kube.client import ClusterError, KubeTarget, connect_cluster
from bodywork_action.kube.deploy import deploy_pipeline, wait_for_namespace_deletion
from bodywork_action.kube.inventory import delete_pipeline, read_status
from bodywork_action.model import Pipeline
from bodywork_action.results import DeploymentResult, DeploymentStatus, StageStatus
from testing.builders import batch, context, mlflow_secret_supply, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import Behaviours, unique_name

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
TOKEN = "bodywork.dev/restart-token"
NAME_LABEL = "app.kubernetes.io/name"


class RealClusterDeployer:
    def __init__(self, control_plane: ControlPlane, behaviours: Behaviours) -> None:
        self.control_plane = control_plane
        self.behaviours = behaviours
        self.target = KubeTarget(kubeconfig=str(control_plane.kubeconfig_path))
        self.deployed: list[tuple[Pipeline, str]] = []

    def __call__(
        self, p: Pipeline, *, deployment_id: str = "run-1", namespace: str = "", **kwargs: Any
    ) -> DeploymentResult:
        self.deployed.append((p, namespace))
        deploy_context = replace(context(deployment_id), namespace=namespace)
        return deploy_pipeline(p, deploy_context, target=self.target, environ={}, **kwargs)

    def read(self, kind: str, name: str, namespace: str) -> Any:
        with self.control_plane.api_client() as api:
            if kind == "Deployment":
                return client.AppsV1Api(api).read_namespaced_deployment(name, namespace)
            if kind == "Namespace":
                return client.CoreV1Api(api).read_namespace(name)
            if kind == "Secret":
                return client.CoreV1Api(api).read_namespaced_secret(name, namespace)
            raise ValueError(kind)

    def pods(self, namespace: str, stage: str) -> list[Any]:
        with self.control_plane.api_client() as api:
            return (
                client.CoreV1Api(api)
                .list_namespaced_pod(namespace, label_selector=f"{NAME_LABEL}={stage}")
                .items
            )

    def jobs(self, namespace: str) -> list[Any]:
        with self.control_plane.api_client() as api:
            return client.BatchV1Api(api).list_namespaced_job(namespace).items


@pytest.fixture
def behaviours(monkeypatch: pytest.MonkeyPatch) -> Behaviours:
    return Behaviours(monkeypatch)


@pytest.fixture
def deploy(control_plane: ControlPlane, behaviours: Behaviours) -> Iterator[RealClusterDeployer]:
    deployer = RealClusterDeployer(control_plane, behaviours)
    yield deployer
    # Leave the shared control plane as we found it: nothing deployed, no scripted pod logs.
    try:
        for index, (p, namespace) in enumerate(deployer.deployed):
            if (p, namespace) not in deployer.deployed[:index]:
                delete_pipeline(p, target=deployer.target, namespace=namespace, environ={})
    finally:
        control_plane.set_pod_logs([])


def ready_tokens(deployer: RealClusterDeployer, namespace: str, stage: str) -> set[str]:
    tokens = set()
    for pod in deployer.pods(namespace, stage):
        ready = any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))
        if ready and pod.metadata.deletion_timestamp is None:
            tokens.add(pod.metadata.annotations[TOKEN])
    return tokens


def test_four_stage_dag_succeeds_through_the_real_controllers(deploy: RealClusterDeployer) -> None:
    name = unique_name()
    p = pipeline(
        "a >> b,c >> d",
        batch("a"),
        batch("b"),
        service("c", replicas=2),
        service("d", ingress=True),
        name=name,
    )

    result = deploy(p)

    assert result.succeeded, result.one_line()
    assert [r.status for r in result.stages] == [StageStatus.SUCCEEDED] * 4
    assert result.stage("d").url == f"http://d.{name}.svc.cluster.local:8000"
    deployment = deploy.read("Deployment", "c", name)
    assert (deployment.status.ready_replicas, deployment.status.updated_replicas) == (2, 2)
    assert {j.metadata.labels[NAME_LABEL] for j in deploy.jobs(name)} == {"a", "b"}
    assert all(j.status.succeeded == 1 for j in deploy.jobs(name))

    state = read_status(p, target=deploy.target, environ={})
    assert {s.stage: s.status for s in state.stages} == dict.fromkeys("abcd", "succeeded")


def test_batch_stage_fails_after_its_real_retries_and_on_failure_runs(
    deploy: RealClusterDeployer, behaviours: Behaviours, control_plane: ControlPlane
) -> None:
    control_plane.set_pod_logs(["loading data", "Traceback: ValueError: bad row 17"])
    behaviours.set("train", "fail", exit_code=3)
    p = pipeline(
        "train >> serve",
        batch("train", retries=1),
        service("serve"),
        batch("on_fail"),
        run_on_failure="on_fail",
        name=unique_name(),
    )

    result = deploy(p)

    assert not result.succeeded
    train = result.stage("train")
    assert (train.status, train.reason, train.attempts) == (StageStatus.FAILED, "BackoffLimitExceeded", 2)
    assert any("Traceback: ValueError: bad row 17" in lines for lines in train.logs.values())
    assert "backoff limit" in train.message, train.message  # the real Job controller's condition message
    # Events come from the real scheduler and Job controller. They are written asynchronously, so only
    # "at least one of each" is certain; the controller's BackoffLimitExceeded event, written just after
    # the Failed condition we watch for, may not be there yet (the reason and message above say it).
    assert any(e.reason == "SuccessfulCreate" for e in train.events), train.events
    assert any(e.reason == "Scheduled" and "kwok-node" in e.message for e in train.events), train.events
    assert result.stage("serve").status is StageStatus.SKIPPED
    assert [(r.stage, r.status) for r in result.stages if r.run_on_failure] == [
        ("on_fail", StageStatus.SUCCEEDED)
    ]


def test_crash_looping_rollout_is_rolled_back_and_the_previous_revision_keeps_serving(
    deploy: RealClusterDeployer, behaviours: Behaviours
) -> None:
    name = unique_name()
    p = pipeline("serve", service("serve", replicas=2), name=name)
    assert deploy(p, deployment_id="run-1").succeeded
    behaviours.set("serve", "crashloop", exit_code=2)

    result = deploy(p, deployment_id="run-2")

    serve = result.stage("serve")
    assert (serve.status, serve.reason, serve.rolled_back) == (StageStatus.FAILED, "CrashLoopBackOff", True)
    deployment = deploy.read("Deployment", "serve", name)
    assert deployment.spec.template.metadata.annotations[TOKEN] == "run-1"
    assert ready_tokens(deploy, name, "serve") == {"run-1"}


@pytest.mark.parametrize(
    "behaviour, reasons",
    [("unschedulable", {"Unschedulable"}), ("image-pull-error", {"ErrImagePull", "ImagePullBackOff"})],
)
def test_a_new_service_that_cannot_start_fails_fast_with_the_reason_and_is_removed(
    deploy: RealClusterDeployer, behaviours: Behaviours, behaviour: str, reasons: set[str]
) -> None:
    name = unique_name()
    behaviours.set("serve", behaviour)

    result = deploy(pipeline("serve", service("serve"), name=name))

    serve = result.stage("serve")
    assert serve.status is StageStatus.FAILED
    assert serve.reason in reasons, serve
    assert serve.rolled_back
    with pytest.raises(client.ApiException) as gone:
        deploy.read("Deployment", "serve", name)
    assert gone.value.status == 404


def test_mlflow_example_with_secrets_then_delete_removes_everything(deploy: RealClusterDeployer) -> None:
    example = load_pipeline(REPO_ROOT / "bodywork.yaml")
    namespace = unique_name()  # not the example's own: a rerun in this session must not wait for it
    result = deploy(example, secrets=mlflow_secret_supply(), namespace=namespace)

    assert result.succeeded, result.one_line()
    assert result.stage("server").url == f"http://server.{namespace}.svc.cluster.local:5000"
    assert (
        deploy.read("Secret", "aws-credentials", namespace).metadata.labels["bodywork.dev/secret-group"]
        == "prod"
    )
    assert "s3cret-password" not in repr(result)

    deleted = delete_pipeline(example, target=deploy.target, namespace=namespace, environ={})
    assert deleted.namespace_deleted and "Deployment/server" in deleted.deleted
    try:
        terminating = deploy.read("Namespace", namespace, "").metadata.deletion_timestamp is not None
    except client.ApiException as exc:  # the namespace controller may already have finished
        terminating = exc.status == 404
    assert terminating


def test_deploying_right_after_delete_waits_for_the_terminating_namespace(
    deploy: RealClusterDeployer, control_plane: ControlPlane
) -> None:
    name = unique_name()
    p = pipeline("prep >> serve", batch("prep"), service("serve"), name=name)
    assert deploy(p, deployment_id="run-1").succeeded
    # Something else in the namespace holds a finalizer, so the namespace stays Terminating until the
    # test lets go: the deploy below must wait for it, not fail on "being terminated" (403).
    hold = {"metadata": {"name": "held", "finalizers": ["bodywork.test/hold"]}, "data": {"a": "b"}}
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespaced_config_map(name, hold)

        def release() -> None:
            core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})

        try:
            assert delete_pipeline(p, target=deploy.target, environ={}).namespace_deleted
            check_a_terminating_namespace(deploy, p, name)
            waited: list[str] = []

            def release_when_waiting(progress: Progress) -> None:
                if progress.kind is ProgressKind.WAITING:
                    waited.append(progress.detail)
                    release()

            result = deploy(p, deployment_id="run-2", report=release_when_waiting)
        finally:
            with contextlib.suppress(client.ApiException):  # already released, or already gone
                release()

    assert waited == [f"namespace {name} is being deleted; waiting for it to go before deploying"]
    assert result.succeeded, result.one_line()
    assert deploy.read("Namespace", name, "").metadata.deletion_timestamp is None


def check_a_terminating_namespace(deploy: RealClusterDeployer, p: Pipeline, name: str) -> None:
    """While the namespace is held Terminating: timeout, a direct create, a dry run, Ctrl+C."""
    cluster = connect_cluster(deploy.target, environ={})
    try:
        with pytest.raises(ClusterError, match="still being deleted after 1s; nothing was applied"):
            wait_for_namespace_deletion(cluster, name, cancel=threading.Event(), timeout_seconds=1)
        # Creating in it anyway is refused; the error says why (it used to blame RBAC).
        with pytest.raises(ClusterError) as refused:
            cluster.create_object(
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x", "namespace": name}}
            )
        assert refused.value.reason == "NamespaceTerminating", refused.value
    finally:
        cluster.close()

    # A dry run checks what it can and says a deploy would wait (it used to report every stage failed).
    dry = deploy(p, deployment_id="run-dry", dry_run=True)
    assert dry.succeeded, dry.one_line()
    assert "is being deleted, and a deploy would first wait for it to go" in dry.message

    # Ctrl+C while waiting: stops at once, a cancelled result, nothing applied.
    cancel = threading.Event()

    def cancel_when_waiting(progress: Progress) -> None:
        if progress.kind is ProgressKind.WAITING:
            cancel.set()

    cancelled = deploy(p, deployment_id="run-cancelled", report=cancel_when_waiting, cancel=cancel)
    assert cancelled.status is DeploymentStatus.CANCELLED
    assert "nothing was applied" in cancelled.message
    assert {r.status for r in cancelled.stages} == {StageStatus.CANCELLED}


def test_scheduled_redeploys_restart_services_keep_three_jobs_and_prune_removed_stages(
    deploy: RealClusterDeployer,
) -> None:
    name = unique_name()
    full = pipeline("train >> serve,extra", batch("train"), service("serve"), service("extra"), name=name)
    first = deploy(full, deployment_id="run-0")
    assert first.succeeded, first.one_line()
    serve_uid = deploy.read("Deployment", "serve", name).metadata.uid

    for run in range(1, 5):  # the same commit again, as a cron redeploy does
        result = deploy(full, deployment_id=f"run-{run}")
        assert result.succeeded, result.one_line()

    serve = deploy.read("Deployment", "serve", name)
    assert serve.metadata.uid == serve_uid, "rolled, not re-created"
    assert serve.spec.template.metadata.annotations[TOKEN] == "run-4"
    assert ready_tokens(deploy, name, "serve") == {"run-4"}  # the real controller finished the restart
    kept = {j.metadata.annotations["bodywork.dev/deployment-id"] for j in deploy.jobs(name)}
    assert kept == {"run-2", "run-3", "run-4"}

    smaller = pipeline("train >> serve", batch("train"), service("serve"), name=name)
    result = deploy(smaller, deployment_id="run-5")

    assert result.succeeded, result.one_line()
    assert "Deployment/extra" in result.message
    with pytest.raises(client.ApiException) as gone:
        deploy.read("Deployment", "extra", name)
    assert gone.value.status == 404
