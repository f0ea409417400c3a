"""One deploy of a pipeline at a time: the Lease, on the fake API server (real client, real HTTP)."""

from __future__ import annotations

import secrets
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

import pytest

from bodywork_action.context import build_deployment_id
from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.kube.client import KubeTarget
from bodywork_action.kube.deploy import deploy_pipeline
from bodywork_action.kube.inventory import delete_pipeline
from bodywork_action.kube.lease import (
    LeaseAction,
    LockTimeout,
    decide_lease,
    describe_holder,
    format_micro_time,
    lease_name,
)
from bodywork_action.results import DeploymentResult
from testing.builders import batch, context, four_stage_pipeline, pipeline, service
from testing.deploy_runs import NAME_LABEL, ConcurrentRuns
from testing.fake_k8s.cluster import FakeCluster

LEASE = "bodywork-demo"
RUN_URL = "https://github.com/example/project/actions/runs/77/attempts/1"


def test_lease_decisions() -> None:
    held = {"spec": {"holderIdentity": "other", "leaseDurationSeconds": 60}}
    assert decide_lease(None, me="me", unchanged_for_seconds=0).action is LeaseAction.CREATE
    assert decide_lease({"spec": {"holderIdentity": ""}}, me="me", unchanged_for_seconds=0).action is (
        LeaseAction.TAKE
    )
    assert decide_lease(held, me="other", unchanged_for_seconds=0).action is LeaseAction.TAKE
    assert decide_lease(held, me="me", unchanged_for_seconds=59).action is LeaseAction.WAIT
    expired = decide_lease(held, me="me", unchanged_for_seconds=60)
    assert (expired.action, expired.reason) == (LeaseAction.TAKE, "expired")
    assert lease_name("demo") == "bodywork-demo"
    assert lease_name("My_Pipe").startswith("bodywork-my-pipe-")


def test_two_deploys_started_together_run_one_after_the_other(fake_cluster: FakeCluster) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "a"}, {"run_seconds": 100})  # 1 s: the race is real
    runs = ConcurrentRuns(
        KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        run_url_prefix="https://github.com/example/project/actions/runs/",
    )
    barrier = threading.Barrier(2)

    def deploy(run: str) -> DeploymentResult:
        barrier.wait()
        return runs.deploy(four_stage_pipeline(), run)

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(deploy, ["run-1", "run-2"])

    assert first.succeeded and second.succeeded, (first.one_line(), second.one_line())
    (early, late) = sorted(["run-1", "run-2"], key=lambda r: runs.span(r)[0])
    assert runs.span(early)[1] < runs.span(late)[0], "the second run's stages began after the first's ended"
    assert any("waiting for the lock bodywork-demo: held by deploy by" in w for w in runs.waits(late))
    assert not any("waiting for the lock" in w for w in runs.waits(early))
    # Every batch stage ran once per deploy: two Jobs per stage, none created twice.
    jobs = [j["metadata"]["labels"][NAME_LABEL] for j in fake_cluster.list("Job", "demo")]
    assert sorted(jobs) == ["a", "a", "b", "b"]
    lease = fake_cluster.get("Lease", LEASE, "demo")
    assert lease["spec"]["holderIdentity"] == "" and lease["spec"]["leaseTransitions"] >= 1


def test_a_second_deploy_gives_up_after_the_lock_timeout_naming_the_holder(fake_cluster: FakeCluster) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "a"}, {"behavior": "hang"})
    runs = ConcurrentRuns(
        KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        run_url_prefix="https://github.com/example/project/actions/runs/",
    )
    cancel = threading.Event()
    holding = threading.Event()

    def on_start(progress: Progress) -> None:
        if progress.kind is ProgressKind.STAGE_STARTED:
            holding.set()

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(
            deploy_pipeline,
            four_stage_pipeline(),
            context("run-1", run_url=RUN_URL),
            target=KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
            report=on_start,
            cancel=cancel,
            environ={},
        )
        assert holding.wait(30)
        try:
            with pytest.raises(LockTimeout) as caught:
                runs.deploy(four_stage_pipeline(), "run-2", lock_timeout_seconds=1)
        finally:
            cancel.set()
        first.result()

    message = str(caught.value)
    assert caught.value.exit_code == 1
    assert f"deploy by {RUN_URL}" in message
    assert "at commit 0123456789ab" in message and "since 20" in message
    assert "Nothing was applied" in message
    assert [
        j["metadata"]["labels"][NAME_LABEL] for j in fake_cluster.list("Job", "demo")
    ] == []  # run-1's was deleted on cancel
    assert fake_cluster.requests.count(verb="create", resource="jobs") == 1, "run-2 created nothing"


def test_a_crashed_holders_lease_expires_and_is_taken_over(fake_cluster: FakeCluster) -> None:
    long_ago = format_micro_time(datetime.now(timezone.utc) - timedelta(hours=3))
    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    fake_cluster.create(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": LEASE,
                "namespace": "demo",
                "annotations": {"bodywork.dev/holder-host": "runner-that-crashed"},
            },
            "spec": {
                "holderIdentity": "crashed@runner-that-crashed",
                "leaseDurationSeconds": 2,
                "acquireTime": long_ago,
                "renewTime": long_ago,
                "leaseTransitions": 0,
            },
        }
    )
    runs = ConcurrentRuns(
        KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        run_url_prefix="https://github.com/example/project/actions/runs/",
    )

    result = runs.deploy(pipeline("a", batch("a")), "run-1")

    assert result.succeeded, result.one_line()
    waits = runs.waits("run-1")
    assert any("held by a run by runner-that-crashed" in w for w in waits), waits
    assert any("took over the lock bodywork-demo" in w and "stopped renewing it" in w for w in waits), waits
    assert fake_cluster.get("Lease", LEASE, "demo")["spec"]["leaseTransitions"] == 1


def test_two_deploy_steps_of_one_workflow_run_get_their_own_job_names(fake_cluster: FakeCluster) -> None:
    ids = [
        build_deployment_id(run_id="77", run_attempt="1", entropy=secrets.token_hex(3), now_seconds=0)
        for _ in range(2)
    ]
    assert ids[0] != ids[1] and all(i.startswith("77-1-") for i in ids)
    runs = ConcurrentRuns(
        KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)),
        run_url_prefix="https://github.com/example/project/actions/runs/",
    )
    p = pipeline("train >> serve", batch("train"), service("serve"))

    results = [runs.deploy(p, deployment_id) for deployment_id in ids]

    assert all(r.succeeded for r in results), [r.one_line() for r in results]
    assert len({j["metadata"]["name"] for j in fake_cluster.list("Job", "demo")}) == 2
    assert [r.status for r in fake_cluster.requests.filter(verb="create", resource="jobs")] == [201, 201]


def test_delete_waits_for_a_running_deploy_and_a_dry_run_takes_no_lock(fake_cluster: FakeCluster) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "a"}, {"behavior": "hang"})
    cancel = threading.Event()
    holding = threading.Event()
    p = pipeline("a", batch("a"))
    target = KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path))

    def on_start(progress: Progress) -> None:
        if progress.kind is ProgressKind.STAGE_STARTED:
            holding.set()

    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(
            deploy_pipeline, p, context("run-1"), target=target, report=on_start, cancel=cancel, environ={}
        )
        assert holding.wait(30)
        try:
            assert delete_pipeline(p, target=target, dry_run=True, environ={}).dry_run
            with pytest.raises(LockTimeout, match="deploy by"):
                delete_pipeline(p, target=target, environ={}, lock_timeout_seconds=0)
        finally:
            cancel.set()
        running.result()
    assert fake_cluster.get("Namespace", "demo", None) is not None
    deleted = delete_pipeline(p, target=target, environ={})
    assert deleted.namespace_deleted


def test_describe_holder_names_run_commit_and_time() -> None:
    lease = {
        "metadata": {
            "annotations": {
                "bodywork.dev/holder-run-url": RUN_URL,
                "bodywork.dev/holder-commit": "0123456789abcdef",
                "bodywork.dev/holder-command": "delete",
            }
        },
        "spec": {"holderIdentity": "x", "acquireTime": "2026-12-02T20:00:00.000000Z"},
    }
    assert (
        describe_holder(lease)
        == f"delete by {RUN_URL}, at commit 0123456789ab, since 2026-12-02T20:00:00.000000Z"
    )


def test_the_lock_timeout_is_a_cli_flag_and_an_action_input() -> None:
    from bodywork_action.cli import build_parser
    from bodywork_action.errors import InputError
    from bodywork_action.github.inputs import read_action_inputs

    parser = build_parser()
    assert parser.parse_args(["deploy"]).lock_timeout == 300
    assert parser.parse_args(["delete", "--lock-timeout", "12.5"]).lock_timeout == 12.5
    with pytest.raises(SystemExit):
        parser.parse_args(["deploy", "--lock-timeout", "-1"])
    assert read_action_inputs({}).lock_timeout_seconds == 300
    assert read_action_inputs({"INPUT_LOCK-TIMEOUT-SECONDS": "0"}).lock_timeout_seconds == 0
    with pytest.raises(InputError, match="lock-timeout-seconds"):
        read_action_inputs({"INPUT_LOCK-TIMEOUT-SECONDS": "soon"})


def test_a_holder_whose_lease_was_taken_stops_its_work(fake_cluster: FakeCluster) -> None:
    from bodywork_action.kube.client import connect_cluster
    from bodywork_action.kube.lease import PipelineLock, build_holder

    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    cluster = connect_cluster(KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)), environ={})
    stopped = threading.Event()
    lines: list[str] = []
    lock = PipelineLock(
        cluster,
        namespace="demo",
        pipeline_label="demo",
        holder=build_holder(command="deploy", deployment_id="run-1", host="vm"),
        duration_seconds=3,  # renewed every second
        report=lines.append,
    )
    try:
        assert lock.acquire(timeout_seconds=5)
        lock.on_lost = stopped.set
        # Another run takes the Lease, as it may once ours went unrenewed for its whole duration.
        from testing.fake_k8s.resources import resolve

        fake_cluster.store.patch(
            resolve("Lease"),
            "demo",
            LEASE,
            "application/merge-patch+json",
            {
                "metadata": {"annotations": {"bodywork.dev/holder-host": "elsewhere"}},
                "spec": {"holderIdentity": "run-2@elsewhere"},
            },
        )
        assert stopped.wait(30), lines
        assert "elsewhere" in lock.lost and any(
            "lost the lock" in line and "stopping" in line for line in lines
        )
    finally:
        lock.release()
        cluster.close()


@pytest.mark.parametrize("taken", [False, True], ids=["still-ours", "taken-by-another-run"])
def test_release_frees_a_lease_written_since_our_last_renewal_only_while_it_is_ours(
    fake_cluster: FakeCluster, taken: bool
) -> None:
    from bodywork_action.kube.client import connect_cluster
    from bodywork_action.kube.lease import PipelineLock, build_holder
    from testing.fake_k8s.resources import resolve

    fake_cluster.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "demo"}})
    cluster = connect_cluster(KubeTarget(kubeconfig=str(fake_cluster.kubeconfig_path)), environ={})
    lines: list[str] = []
    lock = PipelineLock(
        cluster,
        namespace="demo",
        pipeline_label="demo",
        holder=build_holder(command="deploy", deployment_id="run-1", host="vm"),
        report=lines.append,
    )
    try:
        assert lock.acquire(timeout_seconds=5)
        ours = fake_cluster.get("Lease", LEASE, "demo")["spec"]["holderIdentity"]
        change: dict[str, object] = {"metadata": {"annotations": {"example.com/audited": "yes"}}}
        if taken:
            change["spec"] = {"holderIdentity": "run-2@elsewhere"}
        # A write we did not make: our copy's resourceVersion is stale, so the release gets 409.
        fake_cluster.store.patch(resolve("Lease"), "demo", LEASE, "application/merge-patch+json", change)
        lock.release()
        holder = fake_cluster.get("Lease", LEASE, "demo")["spec"]["holderIdentity"]
        assert holder == ("run-2@elsewhere" if taken else ""), (ours, holder)
        assert not any("could not free" in line for line in lines), lines
    finally:
        cluster.close()
