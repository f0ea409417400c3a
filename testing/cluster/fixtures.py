"""pytest fixtures for the real-control-plane tier.

Use from a conftest.py:  ``from testing.cluster.fixtures import control_plane, cp_namespace  # noqa: F401``

``control_plane`` (session scope) builds the binaries if needed (printing build.sh's progress live:
the first build takes 10-30 minutes on 2 cores), starts etcd, kube-apiserver, controller-manager,
scheduler and kwok on 127.0.0.1, and yields the ``ControlPlane`` (``.kubeconfig_path``,
``.server_url``, ``.apply_behaviour()``, ``.set_pod_logs()``, ``.compact_etcd()``, ``.api_client()``).
If the binaries cannot be built (no Go toolchain, build error), dependent tests are SKIPPED with the
exact reason, unless BODYWORK_CONTROLPLANE_REQUIRED=1, which turns that into a failure.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from testing.cluster.binaries import BuildFailed, BuildUnavailable, ensure_binaries
from testing.cluster.launcher import ControlPlane, ControlPlaneError, start_control_plane


def _live_printer(request: pytest.FixtureRequest):
    capman = request.config.pluginmanager.getplugin("capturemanager")

    def say(msg: str) -> None:
        ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
        with ctx:
            print(f"[control-plane] {msg}", file=sys.stderr, flush=True)

    return say


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    say = _live_printer(request)
    required = os.environ.get("BODYWORK_CONTROLPLANE_REQUIRED") == "1"
    try:
        bin_dir = ensure_binaries(progress=say)
    except (BuildUnavailable, BuildFailed) as exc:
        reason = f"real control plane unavailable: {exc}"
        if required:
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        cp = start_control_plane(bin_dir, progress=say)
    except ControlPlaneError as exc:
        pytest.fail(f"real control plane failed to start: {exc}", pytrace=False)
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture
def cp_namespace(control_plane: ControlPlane) -> Iterator[str]:
    """A fresh namespace (deleted afterwards) whose `default` ServiceAccount exists (pods can be created)."""
    from kubernetes import client

    name = f"t-{uuid.uuid4().hex[:10]}"
    with control_plane.api_client() as api:
        core = client.CoreV1Api(api)
        core.create_namespace({"metadata": {"name": name}})
        deadline = time.monotonic() + 30
        while True:
            try:
                core.read_namespaced_service_account("default", name)
                break
            except client.ApiException as exc:
                if exc.status != 404 or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        try:
            yield name
        finally:
            core.delete_namespace(name)


@pytest.fixture(scope="session")
def real_tier(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A control plane with one real node (kubelet + containerd) and no kwok nodes: pods really run.

    Skipped with the exact reason when it can't be built or started; a failure instead in CI (CI=true)
    or with BODYWORK_REALNODE_REQUIRED=1.
    """
    from testing.cluster.realnode import real_node_required, start_real_tier

    say = _live_printer(request)
    try:
        tier = start_real_tier(progress=say)
    except (BuildUnavailable, BuildFailed, ControlPlaneError, OSError, RuntimeError) as exc:
        reason = f"real node unavailable: {type(exc).__name__}: {exc}"
        if real_node_required():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    try:
        yield tier
    finally:
        tier.stop()
