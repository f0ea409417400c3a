"""Watches that drop mid-rollout, a resourceVersion that expired (410), and Ctrl+C / SIGTERM."""

from __future__ import annotations

import itertools
import threading

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.results import DeploymentStatus, StageStatus
from testing.builders import batch, four_stage_pipeline, pipeline, service
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster


def test_watch_streams_dropped_mid_rollout_are_resumed_and_the_deploy_finishes(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Deployment", "c", {"ready_seconds": 40})
    fake_cluster.faults.watch_cut_after = 1  # every stream ends abruptly after its first event

    result = deploy(four_stage_pipeline())

    assert result.succeeded, result.one_line()
    resumed = [r for r in fake_cluster.requests.filter(verb="watch") if "resourceVersion=" in r.query]
    assert len(resumed) > 4, "each watch was re-opened from the last resourceVersion it saw"


def test_a_watch_response_ending_in_half_an_event_is_resumed_from_the_last_whole_event(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Deployment", "c", {"ready_seconds": 10})
    fake_cluster.faults.watch_cut_after = 2  # one whole event, then half of the next and a clean end
    fake_cluster.faults.watch_cut_mid_event = True

    result = deploy(four_stage_pipeline())

    assert result.succeeded, result.one_line()
    resumed = [r for r in fake_cluster.requests.filter(verb="watch") if "resourceVersion=" in r.query]
    assert len(resumed) > 4, "each watch was re-opened from the last whole event it parsed"


def test_an_expired_resource_version_makes_the_watch_relist(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.store.history_size = 3  # resuming soon needs a version older than the server keeps
    fake_cluster.faults.watch_cut_after = 1
    fake_cluster.script("Deployment", "serve", {"ready_seconds": 40})
    # Unrelated writes keep the server's short history moving, so every resume finds it expired.
    done = threading.Event()

    def churn() -> None:
        for number in itertools.count():
            if done.wait(0.005):
                return
            fake_cluster.create(
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"churn-{number}"}}, "default"
            )

    writer = threading.Thread(target=churn, daemon=True)
    writer.start()
    try:
        result = deploy(pipeline("serve", service("serve", replicas=2)))
    finally:
        done.set()
        writer.join(10)

    assert result.succeeded, result.one_line()
    assert fake_cluster.requests.count(verb="list", resource="deployments") >= 2


def test_cancel_stops_waiting_reports_what_ran_and_deletes_the_running_job(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "train"}, {"behavior": "hang"})
    cancel = threading.Event()

    def on_progress(progress: Progress) -> None:
        if progress.kind is ProgressKind.STAGE_STARTED and progress.stages == ("train",):
            cancel.set()

    result = deploy(
        pipeline("train >> serve", batch("train"), service("serve")), cancel=cancel, report=on_progress
    )

    assert result.status is DeploymentStatus.CANCELLED
    assert result.stage("train").status is StageStatus.CANCELLED
    assert "the Job was deleted" in result.stage("train").message
    assert "cancelled while running: train" in result.message
    assert result.stage("serve").status is StageStatus.CANCELLED
    assert names(fake_cluster, "Job") == []
    assert names(fake_cluster, "Deployment") == []
