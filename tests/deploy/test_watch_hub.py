"""The deployment's shared watches (kube/watch_hub.py) against the fake API server: each waiting stage sees
its own objects only, through one list and one watch of the kind; an error of that watch reaches every
stage waiting on it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from bodywork_action.errors import ClusterError
from bodywork_action.kube.client import SECRET, Cluster, KubeTarget, connect_cluster
from bodywork_action.kube.watch_hub import Caches, Feed, WatchHub, labelled
from bodywork_action.verdicts import Phase, Verdict
from testing.fake_k8s.cluster import FakeCluster

PART_OF, NAME = "app.kubernetes.io/part-of", "app.kubernetes.io/name"
STAGES = ("a", "b", "c")


@pytest.fixture
def cluster(fake_cluster: FakeCluster) -> Iterator[Cluster]:
    connected = connect_cluster(KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)), environ={})
    yield connected
    connected.close()


def _secret(fake: FakeCluster, stage: str, name: str) -> None:
    fake.create(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "labels": {PART_OF: "p", NAME: stage}},
        },
        "default",
    )


def test_each_stage_sees_only_its_own_objects_through_one_shared_watch(
    fake_cluster: FakeCluster, cluster: Cluster
) -> None:
    hub = WatchHub(cluster, namespace="default", label_selector=f"{PART_OF}=p", stage_label=NAME)
    seen: dict[str, set[str]] = {stage: set() for stage in STAGES}
    registered = threading.Barrier(len(STAGES) + 1)

    def wait(stage: str) -> Verdict | None:
        def decide(caches: Caches) -> Verdict:
            seen[stage] |= set(caches["secrets"])
            return Verdict(Phase.SUCCEEDED if f"{stage}-done" in caches["secrets"] else Phase.RUNNING)

        registered.wait()
        return hub.wait(
            [Feed("secrets", SECRET, stage, labelled({PART_OF: "p", NAME: stage}))],
            decide,
            cancel=threading.Event(),
            deadline_seconds=60,
        )

    _secret(fake_cluster, "a", "a-before")  # listed: in the snapshot of stage a only
    try:
        with ThreadPoolExecutor(len(STAGES)) as pool:
            verdicts = [pool.submit(wait, stage) for stage in STAGES]
            registered.wait()
            for stage in STAGES:  # each stage's objects arrive while all three wait
                _secret(fake_cluster, stage, f"{stage}-1")
                _secret(fake_cluster, stage, f"{stage}-done")
            assert [v.result().phase for v in verdicts if v.result()] == [Phase.SUCCEEDED] * len(STAGES)
    finally:
        hub.close()

    assert seen["a"] <= {"a-before", "a-1", "a-done"} and "a-done" in seen["a"]
    assert seen["b"] <= {"b-1", "b-done"} and "b-done" in seen["b"]
    assert seen["c"] <= {"c-1", "c-done"} and "c-done" in seen["c"]
    assert fake_cluster.requests.count(verb="list", resource="secrets") == 1
    assert fake_cluster.requests.count(verb="watch", resource="secrets") == 1
    assert hub.watches_opened == 1


def test_an_error_of_the_shared_watch_reaches_every_waiting_stage(
    fake_cluster: FakeCluster, cluster: Cluster
) -> None:
    fake_cluster.faults.match = lambda method, path: "/secrets" in path
    fake_cluster.faults.rate_503 = 1.0  # the secrets' list and watch are never served
    cluster.deadline = time.monotonic() + 2  # the deploy may wait this long for the API server
    hub = WatchHub(cluster, namespace="default", label_selector=f"{PART_OF}=p", stage_label=NAME)

    def wait(stage: str) -> BaseException | None:
        try:
            hub.wait(
                [Feed("secrets", SECRET, stage, labelled({NAME: stage}))],
                lambda caches: Verdict(Phase.RUNNING),
                cancel=threading.Event(),
                deadline_seconds=60,
            )
        except ClusterError as exc:
            return exc
        return None

    try:
        with ThreadPoolExecutor(len(STAGES)) as pool:
            errors = list(pool.map(wait, STAGES))
    finally:
        hub.close()

    assert all(isinstance(error, ClusterError) for error in errors), errors
    assert all("secrets" in str(error) for error in errors), errors


def test_waiting_stages_are_subscriptions_not_threads(fake_cluster: FakeCluster, cluster: Cluster) -> None:
    """Fifty stages wait at once on one pumping thread and one dispatcher; each ends once, with its
    verdict, a Timeout at its deadline, or None when its run is cancelled."""
    hub = WatchHub(cluster, namespace="default", label_selector=f"{PART_OF}=p", stage_label=NAME)
    stages = [f"s{i}" for i in range(50)]
    outcomes: dict[str, list[object]] = {stage: [] for stage in [*stages, "late", "stopped"]}
    ended = threading.Semaphore(0)
    stop = threading.Event()

    def subscribe(stage: str, *, deadline: float = 60, cancel: threading.Event | None = None) -> None:
        def then(outcome: object) -> None:
            outcomes[stage].append(outcome)
            ended.release()

        hub.subscribe(
            [Feed("secrets", SECRET, stage, labelled({PART_OF: "p", NAME: stage}))],
            lambda caches: Verdict(
                Phase.SUCCEEDED if f"{stage}-done" in caches["secrets"] else Phase.RUNNING
            ),
            then,
            cancel=cancel or threading.Event(),
            deadline_seconds=deadline,
        )

    def ours() -> int:  # threads of this process but the in-process fake API server's
        return sum(
            not t.name.startswith("fake-k8s") and "_serve_connection" not in t.name
            for t in threading.enumerate()
        )

    threads_before = ours()
    try:
        for stage in stages:
            subscribe(stage)
        subscribe("late", deadline=0.3)
        subscribe("stopped", cancel=stop)
        assert ours() - threads_before <= 2  # the secrets' pump and the dispatcher
        for stage in stages:
            _secret(fake_cluster, stage, f"{stage}-done")
        stop.set()
        for _ in outcomes:
            assert ended.acquire(timeout=30)
    finally:
        hub.close()

    assert all(
        [getattr(o, "phase", None) for o in outcomes[stage]] == [Phase.SUCCEEDED] for stage in stages
    ), outcomes
    assert [(o.phase, o.reason) for o in outcomes["late"] if isinstance(o, Verdict)] == [
        (Phase.FAILED, "Timeout")
    ]
    assert outcomes["stopped"] == [None]
