"""What `logs` reads and how it prints (bodywork_action/stage_logs.py): plain data in, values out."""

from __future__ import annotations

from typing import Any

import pytest

from bodywork_action import render
from bodywork_action.errors import InputError
from bodywork_action.stage_logs import (
    GIT_SYNC_CONTAINER,
    STAGE_CONTAINER,
    format_log_line,
    parse_since,
    plan_stage_logs,
    referenced_secret_names,
    select_stages,
    short_pod_names,
)
from testing.builders import batch, pipeline, service


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("1.5s", 2), ("500ms", 1), ("2h45m10s", 9910)],
)
def test_since_is_a_go_duration_rounded_up_to_seconds_as_kubectl_does(text: str, seconds: int) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["10", "ten minutes", "1d", "", "0s", "-5m", "5 m"])
def test_a_bad_since_is_one_input_error(text: str) -> None:
    with pytest.raises(InputError, match="--since"):
        parse_since(text)


def test_stages_in_dag_order_or_one_by_its_name_or_kubernetes_name() -> None:
    p = pipeline("prepare_data >> serve", batch("prepare_data"), service("serve"))

    assert [s.name for s in select_stages(p)] == ["prepare_data", "serve"]
    assert [s.name for s in select_stages(p, "prepare-data")] == ["prepare_data"]
    with pytest.raises(InputError, match=r"no stage 'serv'; did you mean 'serve'\?"):
        select_stages(p, "serv")


def test_short_pod_names_are_the_suffix_unless_that_repeats() -> None:
    assert short_pod_names(["serve-5d9f-abcde", "serve-5d9f-fghij"], "serve") == {
        "serve-5d9f-abcde": "abcde",
        "serve-5d9f-fghij": "fghij",
    }
    assert short_pod_names(["serve-aaaa-x1", "serve-bbbb-x1"], "serve") == {
        "serve-aaaa-x1": "aaaa-x1",
        "serve-bbbb-x1": "bbbb-x1",
    }
    assert format_log_line("abcde", "GET /") == "abcde | GET /" and format_log_line("", "x") == "x"


def _job_and_pod(statuses: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    labels = {render.LABEL_NAME: "train"}
    job = {
        "metadata": {
            "name": "train-1",
            "uid": "u1",
            "labels": labels,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        }
    }
    pod = {
        "metadata": {
            "name": "train-1-abcde",
            "labels": {**labels, "job-name": "train-1"},
            "ownerReferences": [{"kind": "Job", "name": "train-1", "uid": "u1"}],
        },
        "status": {"phase": "Pending", **statuses},
    }
    return job, pod


def test_a_failed_git_sync_is_shown_instead_of_a_stage_container_that_never_started() -> None:
    job, pod = _job_and_pod(
        {
            "initContainerStatuses": [
                {"name": GIT_SYNC_CONTAINER, "state": {"terminated": {"exitCode": 128}}}
            ],
            "containerStatuses": [
                {"name": STAGE_CONTAINER, "state": {"waiting": {"reason": "PodInitializing"}}}
            ],
        }
    )
    stage = batch("train")

    (shown,) = plan_stage_logs([stage], jobs=[job], deployments=[], pods=[pod])
    (asked,) = plan_stage_logs([stage], jobs=[job], deployments=[], pods=[pod], container=STAGE_CONTAINER)

    assert shown.header == "train (batch): attempt 1 of 1, pod train-1-abcde of Job train-1"
    (source,) = shown.sources
    assert source.container == GIT_SYNC_CONTAINER and not source.skip_reason
    assert source.note == "the stage container never started: git-sync failed (exit 128); its log instead"
    assert asked.sources[0].skip_reason == "stage has not started yet (PodInitializing)"


def test_a_container_still_cloning_is_not_read() -> None:
    job, pod = _job_and_pod(
        {
            "initContainerStatuses": [{"name": GIT_SYNC_CONTAINER, "state": {"running": {}}}],
            "containerStatuses": [
                {"name": STAGE_CONTAINER, "state": {"waiting": {"reason": "PodInitializing"}}}
            ],
        }
    )

    (shown,) = plan_stage_logs([batch("train")], jobs=[job], deployments=[], pods=[pod])
    (git_sync,) = plan_stage_logs(
        [batch("train")], jobs=[job], deployments=[], pods=[pod], container=GIT_SYNC_CONTAINER
    )

    assert shown.sources[0].skip_reason == "stage has not started yet (PodInitializing)"
    assert git_sync.sources[0].container == GIT_SYNC_CONTAINER and not git_sync.sources[0].skip_reason


def test_the_secrets_to_redact_are_the_stages_and_every_one_the_pods_reference() -> None:
    stage = batch("train", secrets=[("db-credentials", "DB_PASSWORD")])
    pod = {
        "spec": {
            "initContainers": [{"name": GIT_SYNC_CONTAINER}],
            "containers": [
                {
                    "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "other", "key": "X"}}}],
                    "envFrom": [{"secretRef": {"name": "bulk"}}],
                }
            ],
            "volumes": [
                {"name": "git", "secret": {"secretName": "git-token"}},
                {"name": "code", "emptyDir": {}},
            ],
        }
    }

    assert referenced_secret_names([stage], [pod]) == ["bulk", "db-credentials", "git-token", "other"]
