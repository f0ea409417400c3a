"""Manifests for the fake API server's own tests (tests/fake_k8s_tests), and the official client's APIs
to send them with."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace

from kubernetes import client, config


def job(name: str, ns: str = "default", image: str = "busybox:1", labels: dict | None = None, **spec) -> dict:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
        "spec": {
            "template": {
                "spec": {"restartPolicy": "Never", "containers": [{"name": "main", "image": image}]}
            },
            **spec,
        },
    }


def deployment(name: str, ns: str = "default", image: str = "app:1", replicas: int = 1, **spec) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": image, "ports": [{"containerPort": 8000}]}]},
            },
            **spec,
        },
    }


def service(name: str, ns: str = "default", app: str | None = None) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"selector": {"app": app or name}, "ports": [{"port": 80, "targetPort": 8000}]},
    }


def cond(obj: dict | None, type_: str) -> dict | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c
    return None


def client_apis(kubeconfig: str) -> Iterator[SimpleNamespace]:
    """The official client's APIs for ``kubeconfig``, closed when the generator is."""
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
