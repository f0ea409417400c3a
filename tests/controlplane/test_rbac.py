"""The permissions documented in examples/rbac.yaml are enough, on a real kube-apiserver with RBAC.

The role is applied with the real kubectl, a token minted for its ServiceAccount (`kubectl create
token`), and every command then runs as that ServiceAccount: a refused request would fail the test
with the verb and resource the apiserver named.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.kube.inventory import delete_pipeline, read_status
from bodywork_action.results import StageStatus
from testing.builders import batch, context, mlflow_secret_supply, pipeline, service
from testing.cluster.launcher import ControlPlane
from testing.controlplane_runs import Behaviours, unique_name

pytestmark = [pytest.mark.controlplane, pytest.mark.slow]

RBAC_FILE = Path(__file__).resolve().parents[2] / "examples" / "rbac.yaml"
SERVICE_ACCOUNT_NAMESPACE = "bodywork-system"


def kubectl(control_plane: ControlPlane, *args: str, stdin: str = "") -> str:
    executable = shutil.which("kubectl")
    if executable is None:
        pytest.skip("kubectl is not installed")
    done = subprocess.run(
        [executable, f"--kubeconfig={control_plane.kubeconfig_path}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def can_i(target: KubeTarget, verb: str, resource: str, *extra: str) -> str:
    """`kubectl auth can-i` as the identity of ``target``'s kubeconfig ("yes" or "no")."""
    done = subprocess.run(
        [
            shutil.which("kubectl") or "kubectl",
            f"--kubeconfig={target.kubeconfig}",
            "auth",
            "can-i",
            verb,
            resource,
            *extra,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    return done.stdout.strip()


def documented_rbac() -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(RBAC_FILE.read_text()) if doc]


def without(documents: list[dict[str, Any]], suffix: str, **dropped: list[str]) -> list[dict[str, Any]]:
    """The same role and account, renamed with ``suffix``, minus the verbs in ``dropped``
    (keyword = resource with "/" spelled "_", e.g. ``pods_log=["get"]``)."""
    drop = {resource.replace("_", "/"): set(verbs) for resource, verbs in dropped.items()}
    changed = copy.deepcopy([d for d in documents if d["kind"] != "Namespace"])
    for doc in changed:
        doc["metadata"]["name"] += suffix
        if doc["kind"] == "ClusterRole":
            for rule in doc["rules"]:
                (resource,) = rule["resources"]
                rule["verbs"] = [v for v in rule["verbs"] if v not in drop.get(resource, set())]
            doc["rules"] = [rule for rule in doc["rules"] if rule["verbs"]]
        if doc["kind"] == "ClusterRoleBinding":
            doc["roleRef"]["name"] += suffix
            doc["subjects"][0]["name"] += suffix
    return changed


VARIANTS = {
    "-nowatch": {"namespaces": ["list", "watch"]},
    "-nodetails": {"pods_log": ["get"], "events": ["list"]},
}

# Every request the tool makes, by (resource[/subresource], API group): the role must grant exactly
# these verbs (an unused permission is as much a defect in a documented role as a missing one).
USED = {
    ("namespaces", ""): {"get", "list", "watch", "create", "delete"},
    ("secrets", ""): {"get", "list", "create", "update", "delete"},
    ("jobs", "batch"): {"list", "watch", "create", "delete"},
    ("pods", ""): {"list", "watch"},
    ("pods/log", ""): {"get"},
    ("events", ""): {"list"},
    ("deployments", "apps"): {"get", "list", "watch", "create", "update", "patch", "delete"},
    ("services", ""): {"get", "list", "create", "update", "delete"},
    ("services/proxy", ""): {"get"},
    ("ingresses", "networking.k8s.io"): {"get", "list", "create", "update", "delete"},
    ("leases", "coordination.k8s.io"): {"get", "create", "update"},
}


def target_for(control_plane: ControlPlane, documents: list[dict[str, Any]], tmp: Path) -> KubeTarget:
    """Apply ``documents`` and return a kubeconfig that authenticates as their ServiceAccount."""
    kubectl(control_plane, "apply", "-f", "-", stdin=yaml.safe_dump_all(documents))
    (account,) = [d["metadata"]["name"] for d in documents if d["kind"] == "ServiceAccount"]
    token = kubectl(control_plane, "create", "token", account, "-n", SERVICE_ACCOUNT_NAMESPACE).strip()
    config = yaml.safe_load(control_plane.kubeconfig_path.read_text())
    config["users"][0]["user"] = {"token": token}
    path = tmp / f"{account}.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    path.chmod(0o600)
    return KubeTarget(kubeconfig=str(path))


@pytest.fixture
def documented_role(control_plane: ControlPlane, tmp_path: Path) -> KubeTarget:
    return target_for(control_plane, documented_rbac(), tmp_path)


def test_the_documented_role_grants_exactly_what_the_tool_uses(documented_role: KubeTarget) -> None:
    (role,) = [d for d in documented_rbac() if d["kind"] == "ClusterRole"]
    granted: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((resource, group), set()).update(rule["verbs"])
    assert granted == USED
    for (resource, group), verbs in USED.items():
        name, _, subresource = resource.partition("/")
        qualified = f"{name}.{group}" if group else name
        for verb in sorted(verbs):
            extra = [f"--subresource={subresource}"] if subresource else []
            assert can_i(documented_role, verb, qualified, *extra) == "yes", (verb, resource)


@pytest.fixture
def behaviours(monkeypatch: pytest.MonkeyPatch) -> Behaviours:
    return Behaviours(monkeypatch)


def test_the_documented_role_can_deploy_roll_back_report_and_delete(
    documented_role: KubeTarget, behaviours: Behaviours
) -> None:
    # Really a restricted identity, not the admin: anything outside the role is refused.
    assert can_i(documented_role, "list", "nodes") == "no"
    assert can_i(documented_role, "create", "jobs.batch") == "yes"
    name = unique_name()
    p = pipeline(
        "train >> serve,web",
        batch("train", secrets=(("mlflow-config", "MLFLOW_BACKEND_STORE_URI"),)),
        service("serve"),
        service("web", ingress=True),
        name=name,
    )

    def deploy(deployment_id: str, **kwargs: Any) -> Any:
        return deploy_pipeline(
            p,
            context(deployment_id),
            target=documented_role,
            secrets=mlflow_secret_supply(),
            environ={},
            **kwargs,
        )

    try:
        first = deploy("run-1")
        assert first.succeeded, first.one_line()
        assert deploy("run-2", dry_run=True).succeeded
        # A failing rollout needs the failure details (pods, logs, events, ReplicaSets) and a rollback.
        behaviours.set("serve", "crashloop")
        second = deploy("run-2")
        serve = second.stage("serve")
        assert (serve.status, serve.rolled_back) == (StageStatus.FAILED, True), serve
        behaviours.clear()
        third = deploy("run-3")
        assert third.succeeded, third.one_line()

        state = read_status(p, target=documented_role, environ={})
        assert {s.stage for s in state.stages} == {"train", "serve", "web"}
    finally:
        deleted = delete_pipeline(p, target=documented_role, environ={})
    assert deleted.namespace_deleted and "Deployment/serve" in deleted.deleted


def test_without_list_and_watch_on_namespaces_the_wait_for_a_terminating_namespace_polls(
    control_plane: ControlPlane, documented_role: KubeTarget, tmp_path: Path
) -> None:
    restricted = target_for(
        control_plane, without(documented_rbac(), "-nowatch", **VARIANTS["-nowatch"]), tmp_path
    )
    assert can_i(restricted, "create", "jobs.batch") == "yes"  # the binding is in force...
    assert can_i(restricted, "watch", "namespaces") == "no"  # ...and the wait below cannot watch
    name = unique_name()
    p = pipeline("prep", batch("prep"), name=name)
    assert deploy_pipeline(p, context("run-1"), target=restricted, environ={}).succeeded
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        hold = {"metadata": {"name": "held", "finalizers": ["bodywork.test/hold"]}}
        core.create_namespaced_config_map(name, hold)

        def release() -> None:
            core.patch_namespaced_config_map("held", name, {"metadata": {"finalizers": None}})

        waited = threading.Event()

        def release_when_waiting(progress: Progress) -> None:
            if progress.kind is ProgressKind.WAITING:
                waited.set()
                release()

        try:
            assert delete_pipeline(p, target=restricted, environ={}).namespace_deleted
            result = deploy_pipeline(
                p, context("run-2"), target=restricted, environ={}, report=release_when_waiting
            )
        finally:
            with contextlib.suppress(client.ApiException):
                release()
            delete_pipeline(p, target=documented_role, environ={})

    assert waited.is_set()
    assert result.succeeded, result.one_line()


@pytest.fixture(autouse=True)
def _no_leftover_roles(control_plane: ControlPlane) -> Iterator[None]:
    yield
    # Roles, bindings and accounts go; the bodywork-system namespace stays, so the next test's apply
    # never races it while it terminates.
    documents = documented_rbac()
    variants = [doc for suffix, dropped in VARIANTS.items() for doc in without(documents, suffix, **dropped)]
    leftovers = [d for d in [*documents, *variants] if d["kind"] != "Namespace"]
    kubectl(control_plane, "delete", "--ignore-not-found", "-f", "-", stdin=yaml.safe_dump_all(leftovers))


def test_a_role_without_logs_and_events_still_reports_the_failure_and_rolls_back(
    control_plane: ControlPlane, behaviours: Behaviours, tmp_path: Path
) -> None:
    target = target_for(
        control_plane, without(documented_rbac(), "-nodetails", **VARIANTS["-nodetails"]), tmp_path
    )
    assert can_i(target, "create", "deployments.apps") == "yes"
    assert can_i(target, "list", "events") == "no"
    name = unique_name()
    p = pipeline("serve", service("serve"), name=name)
    try:
        assert deploy_pipeline(p, context("run-1"), target=target, environ={}).succeeded
        behaviours.set("serve", "crashloop")
        result = deploy_pipeline(p, context("run-2"), target=target, environ={})
    finally:
        delete_pipeline(p, target=target, environ={})

    serve = result.stage("serve")
    assert (serve.status, serve.reason, serve.rolled_back) == (StageStatus.FAILED, "CrashLoopBackOff", True)
    assert [e.reason for e in serve.events] == ["EventsUnavailable"]
    assert serve.logs and all(
        lines[0].startswith("(logs unavailable: forbidden") for lines in serve.logs.values()
    )
