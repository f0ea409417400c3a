from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from testing.fake_k8s.fixtures import fake_cluster, fake_cluster_https  # noqa: F401
from testing.k8s_objects import client_apis


@pytest.fixture
def k8s(fake_cluster_https) -> Iterator[SimpleNamespace]:  # noqa: F811
    """Official-client APIs talking to the fake over HTTPS with a token."""
    yield from client_apis(str(fake_cluster_https.kubeconfig_path))


@pytest.fixture
def fake(fake_cluster_https):  # noqa: F811
    return fake_cluster_https
