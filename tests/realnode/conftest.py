"""The real-node tier: a real control plane plus one kubelet node on containerd, where stage code runs.

Every pipeline here lives in a git repository the test creates under the node's git root; pods fetch
it through git-sync (as rendered) from the host server on the node's bridge, and pip-install from
the wheelhouse served there. No kwok node exists in this control plane, so every pod is real.
Fixtures only: the helpers live in testing/realnode_runs.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testing.cluster.fixtures import real_tier
from testing.cluster.realnode import RealTier, real_node_required
from testing.cluster.sshserve import SshGitServer, SshServeError
from testing.realnode_runs import RealCluster

__all__ = ["real_tier"]  # the tier's session fixture, for the tests in this folder


@pytest.fixture
def real(real_tier: RealTier) -> Iterator[RealCluster]:
    cluster = RealCluster(real_tier)
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def ssh_git(real_tier: RealTier, tmp_path: Path) -> Iterator[SshGitServer]:
    """A private sshd serving the node's git root over SSH, on the bridge's gateway address only;
    stopped by its PID afterwards. Without Debian's openssh-server it skips (fails where the real node
    is required: CI)."""
    try:
        server = SshGitServer(real_tier.node.gateway, tmp_path / "sshd")
    except SshServeError as exc:
        if real_node_required():
            pytest.fail(f"git over SSH unavailable: {exc}", pytrace=False)
        pytest.skip(f"git over SSH unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()
