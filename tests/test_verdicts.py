"""verdicts.py: verdicts from plain Job / Deployment / Pod / Event dicts."""

from __future__ import annotations

from typing import Any

import pytest

from bodywork_action.verdicts import (
    Phase,
    classify_deployment,
    classify_job,
    select_events,
    select_job_pods,
    select_template_pods,
)

TEMPLATE_LABELS = {"app.kubernetes.io/name": "serve", "app.kubernetes.io/part-of": "p"}
TOKEN = {"bodywork.dev/restart-token": "new"}


def job(*, conditions: list[dict[str, Any]] | None = None, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "train-abc", "uid": "u1"},
        "spec": {"backoffLimit": 2},
        "status": {**status, "conditions": conditions or []},
    }


def job_pod(name: str, phase: str = "Running", waiting: str = "", **extra: Any) -> dict[str, Any]:
    statuses = (
        [{"name": "stage", "state": {"waiting": {"reason": waiting, "message": "boom"}}}] if waiting else []
    )
    return {
        "metadata": {"name": name, "labels": {"batch.kubernetes.io/job-name": "train-abc"}},
        "status": {"phase": phase, "containerStatuses": statuses, **extra},
    }


def deployment(
    *,
    generation: int = 2,
    observed: int = 2,
    replicas: int = 2,
    total: int = 0,
    conditions: list[Any] | None = None,
    **status: int,
) -> dict[str, Any]:
    return {
        "metadata": {"name": "serve", "generation": generation},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": TEMPLATE_LABELS, "annotations": TOKEN}},
        },
        "status": {
            "observedGeneration": observed,
            "replicas": total,
            "conditions": conditions or [],
            **status,
        },
    }


def service_pod(name: str, token: str = "new", **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {**TEMPLATE_LABELS, "pod-template-hash": "abc"},
            "annotations": {"bodywork.dev/restart-token": token},
        },
        "status": {"phase": "Running", **status},
    }


def waiting(reason: str, restarts: int = 0) -> dict[str, Any]:
    return {
        "containerStatuses": [
            {
                "name": "stage",
                "restartCount": restarts,
                "state": {"waiting": {"reason": reason, "message": "m"}},
            }
        ]
    }


# ------------------------------------------------------------------------------------------- jobs


def test_job_without_conditions_is_running() -> None:
    verdict = classify_job(job(active=1))
    assert verdict.phase is Phase.RUNNING
    assert verdict.attempts == 1


def test_job_complete_condition_succeeds_and_counts_retries_as_attempts() -> None:
    verdict = classify_job(job(failed=2, succeeded=1, conditions=[{"type": "Complete", "status": "True"}]))
    assert verdict.phase is Phase.SUCCEEDED
    assert verdict.attempts == 3


def test_job_failed_condition_fails_with_its_reason_and_failed_pods() -> None:
    pods = [job_pod("train-abc-1", "Failed"), job_pod("train-abc-2", "Failed"), job_pod("other", "Failed")]
    pods[2]["metadata"]["labels"] = {"batch.kubernetes.io/job-name": "other"}
    verdict = classify_job(
        job(
            failed=3,
            conditions=[
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            ],
        ),
        pods,
    )
    assert verdict.phase is Phase.FAILED
    assert verdict.reason == "BackoffLimitExceeded"
    assert verdict.attempts == 3
    assert verdict.problem_pods == ("train-abc-1", "train-abc-2")


def test_attempts_stopped_at_their_time_limit_are_named_in_the_failure() -> None:
    stopped = {"name": "stage", "state": {"terminated": {"exitCode": 142, "reason": "Error"}}}
    failed = {"name": "stage", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}
    condition = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}
    verdict = classify_job(
        job(failed=2, conditions=[condition]),
        [
            job_pod("train-abc-1", "Failed", containerStatuses=[stopped]),
            job_pod("train-abc-2", "Failed", containerStatuses=[failed]),
        ],
    )
    assert verdict.reason == "BackoffLimitExceeded"
    assert "1 attempt(s) ran past max_completion_time_seconds and were stopped (exit code 142)" in (
        verdict.message
    )


def test_job_failure_target_counts_as_failed_before_pods_finish() -> None:
    verdict = classify_job(
        job(failed=1, conditions=[{"type": "FailureTarget", "status": "True", "reason": "DeadlineExceeded"}])
    )
    assert (verdict.phase, verdict.reason) == (Phase.FAILED, "DeadlineExceeded")


def test_job_condition_with_status_false_is_ignored() -> None:
    assert (
        classify_job(job(active=1, conditions=[{"type": "Failed", "status": "False"}])).phase is Phase.RUNNING
    )


@pytest.mark.parametrize("reason", ["ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError"])
def test_job_pod_that_cannot_start_fails_fast(reason: str) -> None:
    verdict = classify_job(job(active=1), [job_pod("train-abc-1", "Pending", waiting=reason)])
    assert (verdict.phase, verdict.reason, verdict.problem_pods) == (Phase.FAILED, reason, ("train-abc-1",))


def test_job_pod_waiting_for_container_creation_keeps_running() -> None:
    verdict = classify_job(job(active=1), [job_pod("train-abc-1", "Pending", waiting="ContainerCreating")])
    assert verdict.phase is Phase.RUNNING


def test_unschedulable_job_pod_fails_unless_the_autoscaler_is_adding_a_node() -> None:
    pod = job_pod(
        "train-abc-1",
        "Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes: cpu",
            }
        ],
    )
    failed = classify_job(job(active=1), [pod])
    assert (failed.phase, failed.reason) == (Phase.FAILED, "Unschedulable")
    assert "0/3 nodes" in failed.message
    scaling = [{"reason": "TriggeredScaleUp", "involvedObject": {"name": "train-abc-1"}}]
    assert classify_job(job(active=1), [pod], scaling).phase is Phase.RUNNING


def test_job_pods_are_selected_by_owner_or_job_name_label() -> None:
    owned = {
        "metadata": {"name": "a", "ownerReferences": [{"kind": "Job", "name": "train-abc", "uid": "u1"}]}
    }
    labelled = {"metadata": {"name": "b", "labels": {"job-name": "train-abc"}}}
    prefix_only = {"metadata": {"name": "train-abc-x", "labels": {"job-name": "train-abcd"}}}
    names = [p["metadata"]["name"] for p in select_job_pods(job(), [owned, labelled, prefix_only])]
    assert names == ["a", "b"]


# ------------------------------------------------------------------------------------ deployments


def test_rolled_out_deployment_succeeds() -> None:
    verdict = classify_deployment(deployment(replicas=2, updatedReplicas=2, availableReplicas=2, total=2))
    assert verdict.phase is Phase.SUCCEEDED


def test_stale_status_of_an_older_generation_is_not_success() -> None:
    verdict = classify_deployment(
        deployment(generation=3, observed=2, updatedReplicas=2, availableReplicas=2, total=2)
    )
    assert verdict.phase is Phase.RUNNING


@pytest.mark.parametrize(
    ("updated", "available", "total"),
    [(1, 1, 2), (2, 1, 2), (2, 2, 3)],
    ids=["not-all-updated", "not-all-available", "old-replicas-left"],
)
def test_partial_rollout_is_running(updated: int, available: int, total: int) -> None:
    verdict = classify_deployment(
        deployment(updatedReplicas=updated, availableReplicas=available, total=total)
    )
    assert verdict.phase is Phase.RUNNING
    assert verdict.message


def test_zero_replicas_rolls_out() -> None:
    assert classify_deployment(deployment(replicas=0)).phase is Phase.SUCCEEDED


def test_progress_deadline_exceeded_fails() -> None:
    verdict = classify_deployment(
        deployment(
            conditions=[
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "too slow",
                }
            ]
        )
    )
    assert (verdict.phase, verdict.reason, verdict.message) == (
        Phase.FAILED,
        "ProgressDeadlineExceeded",
        "too slow",
    )


@pytest.mark.parametrize(
    "reason", ["CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "InvalidImageName"]
)
def test_new_pod_that_cannot_run_fails_fast(reason: str) -> None:
    verdict = classify_deployment(
        deployment(updatedReplicas=1, total=3), [service_pod("serve-1", **waiting(reason))]
    )
    assert (verdict.phase, verdict.reason, verdict.problem_pods) == (Phase.FAILED, reason, ("serve-1",))
    assert "serve-1" in verdict.message


def test_crashing_init_container_fails_fast() -> None:
    pod = service_pod(
        "serve-1",
        initContainerStatuses=[{"name": "git-sync", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}],
    )
    verdict = classify_deployment(deployment(updatedReplicas=1), [pod])
    assert verdict.reason == "CrashLoopBackOff"
    assert "git-sync" in verdict.message


def test_old_revision_pods_do_not_fail_the_new_rollout() -> None:
    old = service_pod("serve-old", token="old", **waiting("CrashLoopBackOff"))
    assert classify_deployment(deployment(updatedReplicas=1), [old]).phase is Phase.RUNNING


def test_container_restarting_repeatedly_fails_even_between_crashes() -> None:
    pod = service_pod(
        "serve-1",
        containerStatuses=[
            {
                "name": "stage",
                "restartCount": 3,
                "state": {"running": {}},
                "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
            }
        ],
    )
    verdict = classify_deployment(deployment(updatedReplicas=1), [pod])
    assert verdict.phase is Phase.FAILED
    assert "OOMKilled" in verdict.message


def test_pods_of_the_new_revision_failing_repeatedly_fail_the_rollout() -> None:
    pods = [service_pod(f"serve-{i}", phase="Failed", reason="Evicted") for i in range(2)]
    verdict = classify_deployment(deployment(updatedReplicas=1), pods)
    assert (verdict.phase, verdict.reason) == (Phase.FAILED, "RepeatedPodFailure")
    assert "Evicted" in verdict.message
    assert classify_deployment(deployment(updatedReplicas=1), pods[:1]).phase is Phase.RUNNING


def test_unschedulable_service_pod_fails_fast() -> None:
    pod = service_pod(
        "serve-1",
        phase="Pending",
        conditions=[
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "Insufficient cpu",
            }
        ],
    )
    verdict = classify_deployment(deployment(updatedReplicas=1), [pod])
    assert (verdict.reason, verdict.phase) == ("Unschedulable", Phase.FAILED)


def test_terminating_pods_are_not_part_of_the_template() -> None:
    pod = service_pod("serve-1")
    pod["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    assert select_template_pods(deployment(), [pod, service_pod("serve-2")]) == [service_pod("serve-2")]


# ----------------------------------------------------------------------------------------- events


def test_events_are_selected_by_object_and_ordered_by_time() -> None:
    events = [
        {
            "reason": "BackOff",
            "message": "Back-off restarting ",
            "type": "Warning",
            "count": 4,
            "lastTimestamp": "2024-01-01T00:00:05Z",
            "involvedObject": {"kind": "Pod", "name": "serve-1"},
        },
        {
            "reason": "Scheduled",
            "message": "ok",
            "type": "Normal",
            "lastTimestamp": "2024-01-01T00:00:01Z",
            "involvedObject": {"kind": "Pod", "name": "serve-1"},
        },
        {"reason": "Other", "message": "x", "involvedObject": {"kind": "Pod", "name": "unrelated"}},
    ]
    records = select_events(events, ["serve-1"])
    assert [r.reason for r in records] == ["Scheduled", "BackOff"]
    assert records[1].object == "Pod/serve-1"
    assert records[1].count == 4
    assert records[1].message == "Back-off restarting"


def test_events_of_one_second_are_in_the_order_the_api_server_stored_them() -> None:
    def event(reason: str, second: int, version: str) -> dict[str, object]:
        return {
            "reason": reason,
            "lastTimestamp": f"2024-01-01T00:00:0{second}Z",
            "metadata": {"resourceVersion": version},
            "involvedObject": {"kind": "Pod", "name": "train-1"},
        }

    # Whole-second stamps: resourceVersion breaks the tie, as a number (10 after 9), not as text.
    events = [event("Started", 2, "10"), event("Created", 2, "9"), event("Pulled", 1, "11")]
    assert [r.reason for r in select_events(events, ["train-1"])] == ["Pulled", "Created", "Started"]
