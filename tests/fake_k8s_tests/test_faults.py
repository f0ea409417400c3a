"""Fault injection (off by default) and what the recording sees of it."""

from __future__ import annotations

import http.client
import json
import time

import pytest
from kubernetes import watch
from kubernetes.client import ApiException
from urllib3.exceptions import ProtocolError

from testing.k8s_objects import client_apis


def _conn(fake) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=10)


def _get(fake, path: str) -> tuple[int, dict, bytes]:
    conn = _conn(fake)
    try:
        conn.request("GET", path, headers={"Authorization": f"Bearer {fake.token}"})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def test_faults_are_off_by_default(fake_cluster):
    codes = [_get(fake_cluster, "/api/v1/namespaces/default/secrets")[0] for _ in range(100)]
    assert codes == [200] * 100
    assert all(r.fault is None for r in fake_cluster.requests)


@pytest.mark.parametrize(("attr", "code"), [("rate_500", 500), ("rate_503", 503), ("rate_429", 429)])
def test_error_rates_are_roughly_honoured(fake_cluster, attr, code):
    setattr(fake_cluster.faults, attr, 0.3)
    fake_cluster.faults.retry_after = 2
    results = [_get(fake_cluster, "/api/v1/namespaces/default/secrets") for _ in range(300)]
    hits = [r for r in results if r[0] == code]
    assert {r[0] for r in results} == {200, code}
    assert 0.2 * 300 <= len(hits) <= 0.4 * 300
    status = json.loads(hits[0][2])
    assert status["kind"] == "Status" and status["code"] == code
    if code == 429:
        assert hits[0][1]["Retry-After"] == "2" and status["details"]["retryAfterSeconds"] == 2
    assert fake_cluster.requests.count(fault=str(code)) == len(hits)


def test_dropped_connections(fake_cluster):
    fake_cluster.faults.rate_drop = 1.0
    conn = _conn(fake_cluster)
    try:
        conn.request("GET", "/api/v1/namespaces", headers={"Authorization": f"Bearer {fake_cluster.token}"})
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
    finally:
        conn.close()
    assert fake_cluster.requests[-1].status == 0 and fake_cluster.requests[-1].fault == "drop"
    fake_cluster.faults.reset()
    assert _get(fake_cluster, "/api/v1/namespaces")[0] == 200


def test_faults_can_be_narrowed_and_skip_discovery(fake_cluster):
    fake_cluster.faults.rate_500 = 1.0
    fake_cluster.faults.match = lambda method, path: "/secrets" in path
    assert _get(fake_cluster, "/api/v1/namespaces/default/secrets")[0] == 500
    assert _get(fake_cluster, "/api/v1/namespaces/default/serviceaccounts")[0] == 200
    assert _get(fake_cluster, "/version/")[0] == 200 and _get(fake_cluster, "/api/v1")[0] == 200


def test_latency_is_added(fake_cluster):
    fake_cluster.faults.latency = 0.1
    t0 = time.monotonic()
    assert _get(fake_cluster, "/api/v1/namespaces")[0] == 200
    assert time.monotonic() - t0 >= 0.1


def test_client_sees_injected_errors(fake_cluster):
    for apis in client_apis(str(fake_cluster.kubeconfig_path)):
        fake_cluster.faults.rate_503 = 1.0
        with pytest.raises(ApiException) as err:
            apis.core.list_namespaced_secret("default")
        assert err.value.status == 503
        fake_cluster.faults.reset()
        assert apis.core.list_namespaced_secret("default").items == []


def test_a_watch_cut_mid_event_ends_cleanly_on_half_a_line(fake_cluster):
    for i in range(3):
        fake_cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i}"}})
    fake_cluster.faults.watch_cut_after = 2
    fake_cluster.faults.watch_cut_mid_event = True
    status, _, body = _get(fake_cluster, "/api/v1/namespaces/default/secrets?watch=true")
    first, second = body.split(b"\n")  # the response ended cleanly: the body is whole
    assert status == 200 and json.loads(first)["object"]["metadata"]["name"] == "s0"
    with pytest.raises(ValueError):
        json.loads(second)
    assert b'"ADDED"' in second and b'"object"' in second  # the second event's first half


def test_watch_streams_are_cut_after_n_events(fake_cluster):
    for i in range(5):
        fake_cluster.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"s{i}"}})
    fake_cluster.faults.watch_cut_after = 2
    for apis in client_apis(str(fake_cluster.kubeconfig_path)):
        seen = []
        with pytest.raises(ProtocolError):
            for ev in watch.Watch().stream(apis.core.list_namespaced_secret, "default", timeout_seconds=5):
                seen.append(ev["object"].metadata.name)
        assert seen == ["s0", "s1"]
