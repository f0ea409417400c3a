"""Deploy tests: the real `kubernetes` client over HTTP to the fake API server (testing/fake_k8s)."""

from __future__ import annotations

import pytest

from testing.deploy_runs import Deployer
from testing.fake_k8s.cluster import FakeCluster
from testing.fake_k8s.fixtures import fake_cluster  # noqa: F401


@pytest.fixture
def deploy(fake_cluster: FakeCluster) -> Deployer:  # noqa: F811
    return Deployer(fake_cluster)
