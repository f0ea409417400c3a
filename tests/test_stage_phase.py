"""stage_phase.py: a running stage's phase from snapshots of its Job or Deployment and their pods."""

from __future__ import annotations

from typing import Any

import pytest

from bodywork_action.stage_phase import (
    PodState,
    StagePhase,
    derive_deployment_phase,
    derive_job_phase,
    derive_pod_state,
)

JOB_LABELS = {"batch.kubernetes.io/job-name": "train-abc"}
TEMPLATE_LABELS = {"app.kubernetes.io/name": "serve"}
TOKEN = {"bodywork.dev/restart-token": "new"}
GIT_SYNC = "git-sync"


def container(name: str, state: dict[str, Any], *, restarts: int = 0) -> dict[str, Any]:
    return {"name": name, "state": state, "restartCount": restarts}


def pod(
    name: str = "p-1",
    *,
    phase: str = "Pending",
    node: str = "",
    scheduled: str = "",
    scheduled_reason: str = "",
    ready: bool = False,
    init: list[dict[str, Any]] | None = None,
    main: list[dict[str, Any]] | None = None,
    created: str = "2026-01-01T00:00:00Z",
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    conditions = []
    if scheduled:
        conditions.append({"type": "PodScheduled", "status": scheduled, "reason": scheduled_reason})
    conditions.append({"type": "Ready", "status": "True" if ready else "False"})
    status: dict[str, Any] = {"phase": phase, "conditions": conditions}
    if init is not None:
        status["initContainerStatuses"] = init
    if main is not None:
        status["containerStatuses"] = main
    return {
        "metadata": {
            "name": name,
            "creationTimestamp": created,
            "labels": labels if labels is not None else JOB_LABELS,
            "annotations": annotations or {},
        },
        "spec": {"nodeName": node} if node else {},
        "status": status,
    }


WAITING_CREATE = {"waiting": {"reason": "ContainerCreating"}}
WAITING_INIT = {"waiting": {"reason": "PodInitializing"}}
RUNNING = {"running": {"startedAt": "2026-01-01T00:00:01Z"}}
DONE = {"terminated": {"exitCode": 0, "reason": "Completed"}}


# A pod's life as the kubelet reports it, one snapshot per state.
LIFE = [
    (pod(), PodState.PENDING, ""),
    (pod(scheduled="False", scheduled_reason="Unschedulable"), PodState.UNSCHEDULABLE, ""),
    (pod(node="node-1"), PodState.SCHEDULED, ""),
    (pod(scheduled="True"), PodState.SCHEDULED, ""),
    (
        pod(
            node="n",
            init=[container(GIT_SYNC, WAITING_CREATE)],
            main=[container("stage", WAITING_INIT)],
        ),
        PodState.PULLING_IMAGE,
        "",
    ),
    (
        pod(node="n", init=[container(GIT_SYNC, RUNNING)], main=[container("stage", WAITING_INIT)]),
        PodState.FETCHING_CODE,
        "",
    ),
    (
        pod(node="n", init=[container(GIT_SYNC, DONE)], main=[container("stage", WAITING_CREATE)]),
        PodState.PULLING_IMAGE,
        "",
    ),
    (
        pod(node="n", phase="Running", init=[container(GIT_SYNC, DONE)], main=[container("stage", RUNNING)]),
        PodState.RUNNING,
        "",
    ),
    (
        pod(node="n", phase="Running", ready=True, main=[container("stage", RUNNING)]),
        PodState.READY,
        "",
    ),
    (
        pod(
            node="n",
            phase="Running",
            main=[container("stage", {"waiting": {"reason": "CrashLoopBackOff"}}, restarts=2)],
        ),
        PodState.BACKING_OFF,
        "CrashLoopBackOff",
    ),
    (
        pod(node="n", main=[container("stage", {"waiting": {"reason": "ImagePullBackOff"}})]),
        PodState.BACKING_OFF,
        "ImagePullBackOff",
    ),
    (pod(node="n", phase="Succeeded", main=[container("stage", DONE)]), PodState.COMPLETED, ""),
    (
        pod(node="n", phase="Failed", main=[container("stage", {"terminated": {"exitCode": 3}})]),
        PodState.FAILED,
        "exit code 3",
    ),
]


@pytest.mark.parametrize(
    ("snapshot", "state", "note"), LIFE, ids=[f"{s.value}-{i}" for i, (_, s, _) in enumerate(LIFE)]
)
def test_each_snapshot_of_a_pod_has_its_state(snapshot: dict[str, Any], state: PodState, note: str) -> None:
    assert derive_pod_state(snapshot) == (state, note)


def test_a_pod_being_deleted_is_terminating_whatever_its_status() -> None:
    snapshot = pod(node="n", phase="Running", main=[container("stage", RUNNING)])
    snapshot["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:09Z"
    assert derive_pod_state(snapshot) == (PodState.TERMINATING, "")


# --- batch --------------------------------------------------------------------------------------------

JOB = {"metadata": {"name": "train-abc", "uid": "u1"}, "status": {}}


def test_a_job_without_pods_waits_for_one() -> None:
    assert derive_job_phase(JOB, [], attempts_allowed=3) == StagePhase(PodState.NONE, attempts_allowed=3)


def test_the_newest_pod_is_the_attempt_shown_and_its_number_counts_the_pods() -> None:
    first = pod(
        "train-abc-1", phase="Failed", node="n", main=[container("stage", {"terminated": {"exitCode": 1}})]
    )
    second = pod(
        "train-abc-2", node="n", created="2026-01-01T00:00:30Z", main=[container("stage", WAITING_CREATE)]
    )
    stranger = pod(
        "other-1", labels={"batch.kubernetes.io/job-name": "other"}, created="2026-01-02T00:00:00Z"
    )

    after_first = derive_job_phase(JOB, [first, stranger], attempts_allowed=3)
    after_retry = derive_job_phase(JOB, [first, second, stranger], attempts_allowed=3)

    assert after_first == StagePhase(PodState.FAILED, "exit code 1", attempt=1, attempts_allowed=3)
    assert after_first.describe() == "attempt 1 of 3: failed (exit code 1)" and after_first.warning
    assert after_retry == StagePhase(PodState.PULLING_IMAGE, attempt=2, attempts_allowed=3)
    assert after_retry.describe() == "attempt 2 of 3: pulling image" and not after_retry.warning


def test_the_job_counting_a_next_attempt_before_its_pod_is_seen_keeps_the_attempt_of_the_pod_shown() -> None:
    first = pod("train-abc-1", phase="Failed", node="n")
    job = {**JOB, "status": {"failed": 1, "active": 1}}
    assert derive_job_phase(job, [first], attempts_allowed=2).attempt == 1


def test_a_batch_stage_without_retries_does_not_number_its_attempt() -> None:
    running = pod(node="n", phase="Running", main=[container("stage", RUNNING)])
    assert derive_job_phase(JOB, [running], attempts_allowed=1).describe() == "running"


def test_a_job_pod_that_is_ready_is_just_running() -> None:
    # The kubelet marks a running container without probes Ready: for a Job that says nothing more.
    ready = pod(node="n", phase="Running", ready=True, main=[container("stage", RUNNING)])
    assert derive_job_phase(JOB, [ready], attempts_allowed=1).state is PodState.RUNNING


# --- services -----------------------------------------------------------------------------------------


def deployment(*, replicas: int = 2, generation: int = 2, observed: int = 2, **status: int) -> dict[str, Any]:
    return {
        "metadata": {"name": "serve", "generation": generation},
        "spec": {
            "replicas": replicas,
            "template": {"metadata": {"labels": TEMPLATE_LABELS, "annotations": TOKEN}},
        },
        "status": {"observedGeneration": observed, **status},
    }


def service_pod(
    name: str, *, ready: bool = False, running: bool = True, restarts: int = 0, token: dict[str, str] = TOKEN
) -> dict[str, Any]:
    state = RUNNING if running else WAITING_CREATE
    return pod(
        name,
        node="n",
        phase="Running" if running else "Pending",
        ready=ready,
        main=[container("stage", state, restarts=restarts)],
        labels=TEMPLATE_LABELS,
        annotations=token,
    )


def test_a_rollout_counts_ready_pods_of_the_new_revision_and_shows_the_one_that_got_least_far() -> None:
    old = service_pod("serve-old", ready=True, token={"bodywork.dev/restart-token": "old"})
    pods = [old, service_pod("serve-a", ready=True), service_pod("serve-b", running=False)]

    phase = derive_deployment_phase(deployment(), pods)

    assert phase == StagePhase(PodState.PULLING_IMAGE, ready=1, wanted=2)
    assert phase.describe() == "ready 1/2: pulling image"


def test_the_deployments_own_count_ends_the_rollout_even_before_the_pod_events_arrive() -> None:
    pods = [service_pod("serve-a"), service_pod("serve-b")]
    done = deployment(updatedReplicas=2, availableReplicas=2)
    stale = deployment(generation=3, observed=2, updatedReplicas=2, availableReplicas=2)

    assert derive_deployment_phase(done, pods) == StagePhase(PodState.READY, ready=2, wanted=2)
    assert derive_deployment_phase(done, pods).describe() == "ready 2/2"
    assert derive_deployment_phase(stale, pods).ready == 0, "counts of an older generation are not ours"


def test_restarts_make_a_rollout_phase_a_warning() -> None:
    phase = derive_deployment_phase(deployment(replicas=1), [service_pod("serve-a", restarts=2)])
    assert phase.describe() == "ready 0/1: running, 2 restarts" and phase.warning


def test_a_deployment_without_pods_yet() -> None:
    assert derive_deployment_phase(deployment(replicas=3), []).describe() == "ready 0/3: waiting for a pod"
