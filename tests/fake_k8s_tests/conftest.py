from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from kubernetes import client, config

from testing.fake_k8s.fixtures import fake_cluster, fake_cluster_https  # noqa: F401


def _apis(kubeconfig: str) -> Iterator[SimpleNamespace]:
    api_client = config.new_client_from_config(config_file=kubeconfig)
    with api_client:
        yield SimpleNamespace(
            client=api_client,
            core=client.CoreV1Api(api_client),
            batch=client.BatchV1Api(api_client),
            apps=client.AppsV1Api(api_client),
            net=client.NetworkingV1Api(api_client),
            coord=client.CoordinationV1Api(api_client),
            version=client.VersionApi(api_client),
        )


@pytest.fixture
def k8s(fake_cluster_https) -> Iterator[SimpleNamespace]:  # noqa: F811
    """Official-client APIs talking to the fake over HTTPS with a token."""
    yield from _apis(str(fake_cluster_https.kubeconfig_path))


@pytest.fixture
def fake(fake_cluster_https):  # noqa: F811
    return fake_cluster_https
