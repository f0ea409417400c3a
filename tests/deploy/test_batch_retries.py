"""Batch stages: real retries through backoffLimit, and failing for good."""

from __future__ import annotations

from bodywork_action.results import StageStatus
from testing.builders import batch, pipeline, service
from testing.deploy_runs import NAME_LABEL, Deployer, names
from testing.fake_k8s.cluster import FakeCluster


def test_batch_stage_failing_twice_then_succeeding_uses_its_two_retries(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "train"}, {"fail_times": 2})
    result = deploy(pipeline("train >> serve", batch("train", retries=2), service("serve")))

    assert result.succeeded, result.one_line()
    assert result.stage("train").attempts == 3
    assert result.stage("serve").status is StageStatus.SUCCEEDED


def test_batch_stage_failing_for_good_stops_later_steps_and_runs_on_failure(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script(
        "Job",
        {NAME_LABEL: "train"},
        {"behavior": "fail", "failure_logs": ["loading data", "Traceback: ValueError: bad row 17"]},
    )
    p = pipeline(
        "train >> serve",
        batch("train", retries=1),
        service("serve"),
        batch("on_fail"),
        run_on_failure="on_fail",
    )
    result = deploy(p)

    assert not result.succeeded
    train = result.stage("train")
    assert (train.status, train.reason, train.attempts) == (StageStatus.FAILED, "BackoffLimitExceeded", 2)
    assert result.stage("serve").status is StageStatus.SKIPPED
    assert names(fake_cluster, "Deployment") == []
    assert any("Traceback: ValueError: bad row 17" in lines for lines in train.logs.values())
    assert any(key.endswith("/git-sync") for key in train.logs), "init container logs are gathered too"
    assert any(e.reason == "BackoffLimitExceeded" for e in train.events)

    on_failure = [r for r in result.stages if r.run_on_failure]
    assert [(r.stage, r.status) for r in on_failure] == [("on_fail", StageStatus.SUCCEEDED)]
    failure_job = next(
        j for j in fake_cluster.list("Job", "demo") if j["metadata"]["name"].startswith("on-fail-")
    )
    env = {e["name"]: e.get("value") for e in failure_job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "BackoffLimitExceeded" in env["EXCEPTION_MESSAGE"]


def test_batch_stage_whose_image_cannot_be_pulled_fails_fast_and_is_stopped(
    deploy: Deployer, fake_cluster: FakeCluster
) -> None:
    fake_cluster.script("Job", {NAME_LABEL: "train"}, {"behavior": "imagepull"})
    result = deploy(pipeline("train", batch("train", retries=3)))

    train = result.stage("train")
    assert train.status is StageStatus.FAILED
    assert train.reason in ("ErrImagePull", "ImagePullBackOff")
    assert names(fake_cluster, "Job") == [], "a Job that can never start is not left behind"
