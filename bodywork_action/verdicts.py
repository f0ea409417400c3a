"""Verdicts: is a stage's Job or Deployment done, still going, or failed — and why.

Pure functions over plain object dicts as the API returns them (Job, Deployment, Pods, Events). The
deploy engine watches the cluster and asks these functions after every change; nothing here waits,
reads the clock or talks to the cluster. Failures are recognised as early as the cluster shows them
(CrashLoopBackOff, image pull errors, unschedulable pods, pods failing repeatedly) instead of waiting
for a deadline, which is what Bodywork 3.0 did: it polled every few seconds and reported a stage
that could never start only when its own overall timeout ran out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

from bodywork_action.results import EventRecord

Obj = Mapping[str, Any]

# The exit code of an attempt the bootstrap stopped at its time limit (128 + SIGALRM, by convention).
TIME_LIMIT_EXIT_CODE = 142

# Container "waiting" reasons that never clear up by waiting: fail the stage at once.
IMAGE_OR_CONFIG_WAITING_REASONS = frozenset(
    {
        "ErrImagePull",
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
# CrashLoopBackOff only exists with restartPolicy Always (services); Jobs use restartPolicy Never.
SERVICE_WAITING_REASONS = IMAGE_OR_CONFIG_WAITING_REASONS | {"CrashLoopBackOff"}
# A service container that has restarted this often during a rollout is failing, whatever its state now.
REPEATED_RESTARTS = 3
# This many failed pods (evicted, OOM-killed nodes…) of the new revision count as "failing repeatedly".
REPEATED_POD_FAILURES = 2
# Event reasons that mean an unschedulable pod is being handled (cluster autoscaler adds a node).
SCALE_UP_EVENT_REASONS = frozenset({"TriggeredScaleUp"})


class Phase(str, Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True)
class Verdict:
    phase: Phase
    reason: str = ""  # e.g. "BackoffLimitExceeded", "CrashLoopBackOff", "ProgressDeadlineExceeded"
    message: str = ""
    attempts: int = 0  # Job pods started so far (batch); 0 for services
    problem_pods: tuple[str, ...] = ()  # pods whose logs explain a failure

    @property
    def done(self) -> bool:
        return self.phase is not Phase.RUNNING


@dataclass(frozen=True)
class PodProblem:
    pod: str
    reason: str
    message: str


def _conditions(obj: Obj) -> list[Obj]:
    return list((obj.get("status") or {}).get("conditions") or [])


def _condition(obj: Obj, kind: str) -> Obj | None:
    for condition in _conditions(obj):
        if condition.get("type") == kind:
            return condition
    return None


def _is_true(condition: Obj | None) -> bool:
    return condition is not None and condition.get("status") == "True"


def _name(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# ---------------------------------------------------------------------------------------------- pods


def select_job_pods(job: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """The pods of ``job``: by owner reference, else by the labels the Job controller sets."""
    name = _name(job)
    uid = (job.get("metadata") or {}).get("uid")
    selected = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        owners = meta.get("ownerReferences") or []
        owned = any(o.get("kind") == "Job" and (o.get("uid") == uid or o.get("name") == name) for o in owners)
        if owned or name in (labels.get("batch.kubernetes.io/job-name"), labels.get("job-name")):
            selected.append(pod)
    return selected


def select_template_pods(workload: Obj, pods: Iterable[Obj]) -> list[Obj]:
    """Pods created from the workload's *current* pod template.

    A pod carries its template's labels and annotations; rendering puts a per-deployment restart
    token in the template annotations, so pods of the previous revision do not match.
    """
    template_meta = ((workload.get("spec") or {}).get("template") or {}).get("metadata") or {}
    want_labels = template_meta.get("labels") or {}
    want_annotations = template_meta.get("annotations") or {}
    selected = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        if meta.get("deletionTimestamp"):
            continue
        if all(labels.get(k) == v for k, v in want_labels.items()) and all(
            annotations.get(k) == v for k, v in want_annotations.items()
        ):
            selected.append(pod)
    return selected


def _container_statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])


def _is_scaling_up(pod_name: str, events: Sequence[Obj]) -> bool:
    return any(
        e.get("reason") in SCALE_UP_EVENT_REASONS and (e.get("involvedObject") or {}).get("name") == pod_name
        for e in events
    )


def classify_pod(
    pod: Obj, *, waiting_reasons: frozenset[str], events: Sequence[Obj] = ()
) -> PodProblem | None:
    """The reason ``pod`` will not come up by itself, or None while it may still."""
    name = _name(pod)
    scheduled = _condition(pod, "PodScheduled")
    if (
        scheduled is not None
        and scheduled.get("status") == "False"
        and scheduled.get("reason") == "Unschedulable"
        and not _is_scaling_up(name, events)
    ):
        return PodProblem(name, "Unschedulable", str(scheduled.get("message") or "no node fits the pod"))
    for status in _container_statuses(pod):
        waiting = (status.get("state") or {}).get("waiting") or {}
        reason = waiting.get("reason")
        if reason in waiting_reasons:
            detail = str(waiting.get("message") or "")
            message = f"container {status.get('name')}: {reason}" + (f": {detail}" if detail else "")
            return PodProblem(name, str(reason), message)
    return None


def _repeated_restarts(pod: Obj) -> PodProblem | None:
    for status in _container_statuses(pod):
        if _int(status.get("restartCount")) >= REPEATED_RESTARTS:
            last = (status.get("lastState") or {}).get("terminated") or {}
            why = str(last.get("reason") or "Error")
            exit_code = last.get("exitCode")
            return PodProblem(
                _name(pod),
                "CrashLoopBackOff",
                f"container {status.get('name')} restarted {status.get('restartCount')} times "
                f"(last exit: {why}{'' if exit_code is None else f', code {exit_code}'})",
            )
    return None


# ---------------------------------------------------------------------------------------------- jobs


def classify_job(job: Obj, pods: Iterable[Obj] = (), events: Sequence[Obj] = ()) -> Verdict:
    """A batch stage's verdict from its Job (conditions Complete / Failed) and the Job's pods."""
    status = job.get("status") or {}
    own_pods = select_job_pods(job, pods)
    failed_pods = tuple(_name(p) for p in own_pods if (p.get("status") or {}).get("phase") == "Failed")
    counted = _int(status.get("failed")) + _int(status.get("succeeded")) + _int(status.get("active"))
    attempts = max(counted, len(own_pods))
    if _is_true(_condition(job, "Complete")):
        return Verdict(Phase.SUCCEEDED, attempts=max(attempts, 1))
    # FailureTarget is set (Kubernetes ≥ 1.31) as soon as the Job is doomed, before its pods finish.
    for kind in ("Failed", "FailureTarget"):
        condition = _condition(job, kind)
        if _is_true(condition):
            assert condition is not None
            reason = str(condition.get("reason") or "JobFailed")
            message = str(condition.get("message") or "the Job failed")
            timed_out = sum(1 for pod in own_pods if _exit_code(pod, "stage") == TIME_LIMIT_EXIT_CODE)
            if timed_out:
                message += (
                    f"; {timed_out} attempt(s) ran past max_completion_time_seconds and were stopped "
                    f"(exit code {TIME_LIMIT_EXIT_CODE})"
                )
            return Verdict(Phase.FAILED, reason, message, attempts, failed_pods or _names(own_pods))
    for pod in own_pods:
        problem = classify_pod(pod, waiting_reasons=IMAGE_OR_CONFIG_WAITING_REASONS, events=events)
        if problem is not None:
            return Verdict(Phase.FAILED, problem.reason, problem.message, max(attempts, 1), (problem.pod,))
    return Verdict(Phase.RUNNING, attempts=attempts)


def _exit_code(pod: Obj, container: str) -> int | None:
    for status in _container_statuses(pod):
        if status.get("name") == container:
            terminated = (status.get("state") or {}).get("terminated") or {}
            code = terminated.get("exitCode")
            return code if isinstance(code, int) else None
    return None


def _names(pods: Iterable[Obj]) -> tuple[str, ...]:
    return tuple(_name(p) for p in pods)


# ----------------------------------------------------------------------------------------- deployments


def classify_deployment(deployment: Obj, pods: Iterable[Obj] = (), events: Sequence[Obj] = ()) -> Verdict:
    """A service stage's verdict: rolled out (like ``kubectl rollout status``), still going, or failing.

    Success needs the controller to have seen this generation, every replica updated and available,
    and no replica of an older revision left.
    """
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    wanted = spec.get("replicas", 1)
    wanted = wanted if isinstance(wanted, int) else 1
    generation = _int((deployment.get("metadata") or {}).get("generation"))
    observed = _int(status.get("observedGeneration"))
    updated = _int(status.get("updatedReplicas"))
    available = _int(status.get("availableReplicas"))
    total = _int(status.get("replicas"))
    current = observed >= generation and observed > 0
    if current and updated >= wanted and total <= updated and available >= updated:
        return Verdict(Phase.SUCCEEDED)

    progressing = _condition(deployment, "Progressing")
    if (
        current
        and progressing is not None
        and progressing.get("status") == "False"
        and progressing.get("reason") == "ProgressDeadlineExceeded"
    ):
        template_pods = select_template_pods(deployment, pods)
        return Verdict(
            Phase.FAILED,
            "ProgressDeadlineExceeded",
            str(progressing.get("message") or "the rollout made no progress before its deadline"),
            problem_pods=_names(template_pods),
        )

    template_pods = select_template_pods(deployment, pods)
    for pod in template_pods:
        problem = classify_pod(pod, waiting_reasons=SERVICE_WAITING_REASONS, events=events) or (
            _repeated_restarts(pod)
        )
        if problem is not None:
            return Verdict(
                Phase.FAILED, problem.reason, f"pod {problem.pod}: {problem.message}", 0, (problem.pod,)
            )
    failed = [p for p in template_pods if (p.get("status") or {}).get("phase") == "Failed"]
    if len(failed) >= REPEATED_POD_FAILURES:
        why = ", ".join(sorted({str((p.get("status") or {}).get("reason") or "Failed") for p in failed}))
        return Verdict(
            Phase.FAILED,
            "RepeatedPodFailure",
            f"{len(failed)} pods of the new revision failed ({why})",
            problem_pods=_names(failed),
        )
    return Verdict(Phase.RUNNING, message=_rollout_progress(wanted, updated, available, total, current))


def _rollout_progress(wanted: int, updated: int, available: int, total: int, current: bool) -> str:
    if not current:
        return "waiting for the Deployment controller to see the new spec"
    if updated < wanted:
        return f"{updated} of {wanted} replicas updated"
    if total > updated:
        return f"{total - updated} old replicas pending termination"
    return f"{available} of {updated} updated replicas available"


# -------------------------------------------------------------------------------------------- events


def select_events(events: Iterable[Obj], object_names: Iterable[str]) -> list[EventRecord]:
    """The events about the named objects (Job, Deployment, ReplicaSets, Pods), oldest first.

    Event times have whole-second resolution, so events of one second are put in the order the API
    server stored them (their resourceVersion)."""
    names = set(object_names)
    chosen = [e for e in events if (e.get("involvedObject") or {}).get("name") in names]
    chosen.sort(key=_event_order)
    return [build_event_record(e) for e in chosen]


def _event_order(event: Obj) -> tuple[str, int]:
    stamp = str(event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or "")
    version = str((event.get("metadata") or {}).get("resourceVersion") or "")
    return stamp, int(version) if version.isdigit() else 0


def build_event_record(event: Obj) -> EventRecord:
    involved = event.get("involvedObject") or {}
    return EventRecord(
        reason=str(event.get("reason") or ""),
        message=str(event.get("message") or "").strip(),
        object=f"{involved.get('kind', '')}/{involved.get('name', '')}",
        type=str(event.get("type") or "Normal"),
        count=_int(event.get("count")) or 1,
    )
