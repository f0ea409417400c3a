"""Watch: chunked streams, timeoutSeconds, resume, 410 Gone, selector filtering, bookmarks."""

from __future__ import annotations

import http.client
import json

import pytest
from kubernetes import watch
from kubernetes.client import ApiException

from testing.k8s_objects import client_apis


def _secret(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}}


def _collect(stream, until) -> list[tuple[str, str]]:
    seen = []
    for ev in stream:
        obj = ev["object"]
        name = obj["metadata"].get("name", "") if isinstance(obj, dict) else obj.metadata.name
        seen.append((ev["type"], name))
        if until(ev, name):
            break
    return seen


def test_watch_streams_existing_then_live_events(k8s):
    k8s.core.create_namespaced_secret("default", _secret("before"))
    w = watch.Watch()
    stream = w.stream(k8s.core.list_namespaced_secret, "default", timeout_seconds=10)
    first = next(stream)
    assert (first["type"], first["object"].metadata.name) == ("ADDED", "before")
    k8s.core.patch_namespaced_secret("before", "default", {"metadata": {"labels": {"x": "1"}}})
    k8s.core.delete_namespaced_secret("before", "default")
    k8s.core.create_namespaced_secret("default", _secret("end"))
    seen = _collect(stream, lambda ev, name: name == "end")
    w.stop()
    stream.close()
    assert seen == [("MODIFIED", "before"), ("DELETED", "before"), ("ADDED", "end")]


def test_watch_is_namespaced_and_ends_at_timeout(k8s, fake):
    k8s.core.create_namespace({"metadata": {"name": "other"}})
    k8s.core.create_namespaced_secret("other", _secret("elsewhere"))
    rv = k8s.core.list_namespaced_secret("default").metadata.resource_version
    events = list(
        watch.Watch().stream(
            k8s.core.list_namespaced_secret, "default", resource_version=rv, timeout_seconds=1
        )
    )
    assert events == []  # the stream ended by itself after timeoutSeconds, with nothing from "other"
    rec = fake.requests.filter(verb="watch", resource="secrets")[-1]
    assert rec.status == 200 and "timeoutSeconds=1" in rec.query


def test_watch_resumes_from_resource_version(k8s):
    k8s.core.create_namespaced_secret("default", _secret("a"))
    rv = k8s.core.read_namespaced_secret("a", "default").metadata.resource_version
    k8s.core.create_namespaced_secret("default", _secret("b"))
    k8s.core.create_namespaced_secret("default", _secret("c"))
    w = watch.Watch()
    stream = w.stream(k8s.core.list_namespaced_secret, "default", resource_version=rv, timeout_seconds=10)
    seen = _collect(stream, lambda ev, name: name == "c")
    stream.close()
    assert seen == [("ADDED", "b"), ("ADDED", "c")]


def test_watch_from_expired_resource_version_is_410_gone(k8s, fake):
    fake.store.history_size = 3
    k8s.core.create_namespaced_secret("default", _secret("old"))
    rv = k8s.core.read_namespaced_secret("old", "default").metadata.resource_version
    for i in range(5):
        k8s.core.create_namespaced_secret("default", _secret(f"s{i}"))
    with pytest.raises(ApiException) as err:
        list(
            watch.Watch().stream(
                k8s.core.list_namespaced_secret, "default", resource_version=rv, timeout_seconds=5
            )
        )
    assert err.value.status == 410
    # a version still inside the retained history resumes fine
    recent = k8s.core.read_namespaced_secret("s3", "default").metadata.resource_version
    stream = watch.Watch().stream(
        k8s.core.list_namespaced_secret, "default", resource_version=recent, timeout_seconds=5
    )
    assert _collect(stream, lambda ev, name: True) == [("ADDED", "s4")]
    stream.close()


def test_watch_label_selector_filters_and_reports_leaving_objects(k8s):
    rv = k8s.core.list_namespaced_secret("default").metadata.resource_version
    w = watch.Watch()  # the stream is lazy: resuming from rv makes the order of calls below irrelevant
    stream = w.stream(
        k8s.core.list_namespaced_secret,
        "default",
        label_selector="app=x",
        resource_version=rv,
        timeout_seconds=10,
    )
    k8s.core.create_namespaced_secret("default", _secret("other", app="y"))
    k8s.core.create_namespaced_secret("default", _secret("m", app="x"))
    k8s.core.patch_namespaced_secret("m", "default", {"metadata": {"labels": {"app": "z"}}})
    k8s.core.patch_namespaced_secret("other", "default", {"metadata": {"labels": {"app": "x"}}})
    k8s.core.create_namespaced_secret("default", _secret("end", app="x"))
    seen = _collect(stream, lambda ev, name: name == "end")
    stream.close()
    assert seen == [("ADDED", "m"), ("DELETED", "m"), ("ADDED", "other"), ("ADDED", "end")]


def test_watch_field_selector(k8s):
    w = watch.Watch()
    stream = w.stream(
        k8s.core.list_namespaced_secret, "default", field_selector="metadata.name=want", timeout_seconds=10
    )
    k8s.core.create_namespaced_secret("default", _secret("noise"))
    k8s.core.create_namespaced_secret("default", _secret("want"))
    seen = _collect(stream, lambda ev, name: True)
    stream.close()
    assert seen == [("ADDED", "want")]


def test_watch_bookmarks_when_asked(k8s):
    rv = k8s.core.list_namespaced_secret("default").metadata.resource_version
    w = watch.Watch()
    stream = w.stream(
        k8s.core.list_namespaced_secret,
        "default",
        allow_watch_bookmarks=True,
        resource_version=rv,
        timeout_seconds=10,
    )
    ev = next(stream)
    stream.close()
    assert ev["type"] == "BOOKMARK"
    assert ev["object"]["kind"] == "Secret" and ev["object"]["metadata"]["resourceVersion"] == rv


def test_watch_uses_chunked_transfer_over_plain_http(fake_cluster):
    conn = http.client.HTTPConnection("127.0.0.1", int(fake_cluster.url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request(
            "GET",
            "/api/v1/namespaces?watch=true&timeoutSeconds=5",
            headers={"Authorization": f"Bearer {fake_cluster.token}"},
        )
        resp = conn.getresponse()
        assert resp.status == 200 and resp.getheader("Transfer-Encoding") == "chunked"
        first = json.loads(resp.readline())
        assert first["type"] == "ADDED" and first["object"]["kind"] == "Namespace"
    finally:
        conn.close()


def test_http_cluster_serves_the_official_client(fake_cluster):
    for apis in client_apis(str(fake_cluster.kubeconfig_path)):
        ns = apis.core.read_namespace("default")
        assert ns.metadata.labels["kubernetes.io/metadata.name"] == "default"
    assert fake_cluster.url.startswith("http://127.0.0.1:")
