"""The fake at scale: 1,000 Jobs run to completion under many concurrent watches (no timed assertions).

What keeps the fake fast is checked by its structure, not by a clock: a write reaches only the watches
of its own kind (and namespace, and selector), the history is found by resourceVersion, and the
controllers find a Job's pods by its uid rather than by scanning the namespace.
"""

from __future__ import annotations

import http.client
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from testing.fake_k8s import FakeCluster, Scenario
from testing.fake_k8s.resources import resolve
from testing.k8s_objects import job

STAGES = 1000
NS = "scale"


def _conn(fake: FakeCluster) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", int(fake.url.rsplit(":", 1)[1]), timeout=60)


def _request(conn: http.client.HTTPConnection, fake: FakeCluster, method: str, path: str, body=None):
    headers = {"Authorization": f"Bearer {fake.token}", "Content-Type": "application/json"}
    conn.request(method, path, json.dumps(body) if body is not None else None, headers)
    response = conn.getresponse()
    return response.status, json.loads(response.read() or b"null")


def _watch_until_complete(fake: FakeCluster, rv: str, want: int, label: str, out: list) -> None:
    """One label-selected watch of Jobs, resumed from `rv`, until `want` Jobs are Complete."""
    conn = _conn(fake)
    query = f"watch=true&resourceVersion={rv}&labelSelector={label}&timeoutSeconds=120"
    conn.request(
        "GET",
        f"/apis/batch/v1/namespaces/{NS}/jobs?{query}",
        headers={"Authorization": f"Bearer {fake.token}"},
    )
    response = conn.getresponse()
    complete: set[str] = set()
    types: list[str] = []
    while len(complete) < want:
        line = response.readline()
        if not line:
            break
        event = json.loads(line)
        types.append(event["type"])
        obj = event["object"]
        conditions = (obj.get("status") or {}).get("conditions") or []
        if any(c["type"] == "Complete" and c["status"] == "True" for c in conditions):
            complete.add(obj["metadata"]["name"])
    conn.close()
    out.append((complete, types))


def test_a_thousand_jobs_complete_under_shared_and_per_stage_watches() -> None:
    with FakeCluster(time_scale=0.01, bookmark_interval=60) as fake:
        fake.script("Job", "bench=scale", Scenario(start_seconds=0.5, run_seconds=1.0))
        conn = _conn(fake)
        assert _request(conn, fake, "POST", "/api/v1/namespaces", {"metadata": {"name": NS}})[0] == 201
        rv = _request(conn, fake, "GET", f"/apis/batch/v1/namespaces/{NS}/jobs")[1]["metadata"][
            "resourceVersion"
        ]
        conn.close()
        # one shared watch for all stages plus 20 per-stage watches (label-selected), all at once
        results: list = []
        watchers = [
            threading.Thread(target=_watch_until_complete, args=(fake, rv, STAGES, "bench%3Dscale", results))
        ]
        watchers += [
            threading.Thread(target=_watch_until_complete, args=(fake, rv, 1, f"stage%3Ds{i}", results))
            for i in range(0, STAGES, STAGES // 20)
        ]
        for t in watchers:
            t.start()
        fake.wait_for(lambda: len(fake.store.watchers.get(resolve("jobs").key, ())) == len(watchers))

        def create(i: int) -> int:
            c = _conn(fake)
            try:
                body = job(f"s{i}", NS, labels={"bench": "scale", "stage": f"s{i}"})
                return _request(c, fake, "POST", f"/apis/batch/v1/namespaces/{NS}/jobs", body)[0]
            finally:
                c.close()

        with ThreadPoolExecutor(32) as pool:  # 32 connections at once: the listen backlog must take them
            statuses = list(pool.map(create, range(STAGES)))
        assert statuses == [201] * STAGES
        for t in watchers:
            t.join(180)
        assert not any(t.is_alive() for t in watchers)

        complete_sets = sorted((len(c) for c, _ in results), reverse=True)
        assert complete_sets == [STAGES] + [1] * (len(watchers) - 1)
        # a per-stage watch saw only its own Job's events: nothing of the 999 others
        for complete, types in results:
            if len(complete) == 1:
                assert set(types) <= {"ADDED", "MODIFIED"} and len(types) <= 4

        jobs, _ = fake.store.list(resolve("jobs"), NS, copy=False)
        assert len(jobs) == STAGES
        pods, _ = fake.store.list(resolve("pods"), NS, copy=False)
        assert len(pods) == STAGES and all(p["status"]["phase"] == "Succeeded" for p in pods)
        # the controllers' owner index finds each Job's pod without a scan
        uid = jobs[0]["metadata"]["uid"]
        assert [
            p["metadata"]["ownerReferences"][0]["uid"] for p in fake.store.owned(resolve("pods"), NS, uid)
        ] == [uid]
        # watches that ended are unregistered
        fake.wait_for(lambda: not fake.store.watchers.get(resolve("jobs").key))
        assert fake.internal_errors == []


def test_history_is_indexed_by_resource_version() -> None:
    with FakeCluster(time_scale=0, history_size=50) as fake:
        store = fake.store
        for i in range(200):
            fake.create({"kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
        events = list(store.history)
        assert len(events) == 50
        assert [e.rv for e in events] == list(range(store.rv - 49, store.rv + 1))
        assert [e.rv for e in store.history.since(store.rv - 3)] == [store.rv - 2, store.rv - 1, store.rv]
        assert store.history.since(store.rv) == []
        assert store.oldest_resumable_rv() == store.rv - 50


def test_a_watch_is_not_woken_by_writes_of_other_kinds_or_namespaces() -> None:
    with FakeCluster(time_scale=0) as fake:
        fake.create({"kind": "Namespace", "metadata": {"name": "other"}})
        jobs = resolve("jobs")
        watcher, initial, _ = fake.store.watch(jobs, "default", lambda o: bool(o), None)
        try:
            assert initial == []
            for i in range(50):
                fake.create({"kind": "ConfigMap", "metadata": {"name": f"c{i}"}})
                fake.create(job(f"elsewhere{i}", "other"))
            assert watcher.take(0) == []
            fake.create(job("mine", "default"))
            assert [e.obj["metadata"]["name"] for e in watcher.take(0)][:1] == ["mine"]
        finally:
            fake.store.unwatch(watcher)
