"""Stage phases: where a running stage is now (scheduled, pulling image, running, ready 1/2 ...).

Pure functions over the same Job, Deployment and Pod dicts the deploy engine already watches for its
verdicts (``verdicts.py``): no request of their own. The engine derives a ``StagePhase`` after every
watch event and reports it only when it differs from the last one, so a log gets one line per change
of state, never one per event. Elapsed time is not part of a phase (it changes every second); the
view adds it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum

from bodywork_action.verdicts import Obj, select_job_pods, select_template_pods

# Container "waiting" reasons that mean the kubelet is backing off: worth a warning while still running.
BACK_OFF_REASONS = frozenset({"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull"})


class PodState(str, Enum):
    NONE = "waiting for a pod"  # the Job or Deployment exists; its controller has made no pod yet
    PENDING = "pending"  # no node yet
    UNSCHEDULABLE = "unschedulable"
    SCHEDULED = "scheduled"  # on a node; the kubelet has not reported containers yet
    PULLING_IMAGE = "pulling image"  # containers being created: image pulls happen here
    FETCHING_CODE = "fetching code"  # the git-sync init container clones the commit
    BACKING_OFF = "backing off"  # a container waits in CrashLoopBackOff / ImagePullBackOff
    RUNNING = "running"
    READY = "ready"
    COMPLETED = "completed"
    FAILED = "failed"
    TERMINATING = "terminating"


WARNING_STATES = frozenset({PodState.UNSCHEDULABLE, PodState.BACKING_OFF, PodState.FAILED})


@dataclass(frozen=True)
class StagePhase:
    """A running stage's state as last observed; equal phases mean nothing worth a line changed."""

    state: PodState
    note: str = ""  # why: a waiting reason, an exit code
    attempt: int = 0  # batch: which attempt the newest pod is (1-based); 0 for services
    attempts_allowed: int = 0  # batch: retries + 1
    ready: int = 0  # services: ready pods of the new revision
    wanted: int = 0  # services: replicas; 0 for batch stages
    restarts: int = 0  # container restarts of the pods shown

    @property
    def warning(self) -> bool:
        return self.state in WARNING_STATES or self.restarts > 0

    def describe(self) -> str:
        """``attempt 2 of 3: running``, ``ready 1/2: pulling image``, ``restarts 2``."""
        parts = []
        if self.wanted:
            parts.append(f"ready {self.ready}/{self.wanted}")
        elif self.attempts_allowed > 1 and self.attempt:
            parts.append(f"attempt {self.attempt} of {self.attempts_allowed}")
        state = self.state.value + (f" ({self.note})" if self.note else "")
        if not (self.wanted and self.state is PodState.READY):  # "ready 2/2: ready" says it twice
            parts.append(state)
        text = ": ".join(parts)
        if self.restarts:
            text += f", {self.restarts} restart{'s' if self.restarts != 1 else ''}"
        return text


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _status(obj: Obj) -> Obj:
    return obj.get("status") or {}


def _condition_status(obj: Obj, kind: str) -> tuple[str, str]:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            return str(condition.get("status") or ""), str(condition.get("reason") or "")
    return "", ""


def _restarts(pod: Obj) -> int:
    counts = (s.get("restartCount") for s in _status(pod).get("containerStatuses") or [])
    return sum(c for c in counts if isinstance(c, int) and not isinstance(c, bool))


def _exit_note(pod: Obj) -> str:
    for container in _status(pod).get("containerStatuses") or []:
        terminated = (container.get("state") or {}).get("terminated") or {}
        code = terminated.get("exitCode")
        if isinstance(code, int) and code != 0:
            return f"exit code {code}"
    return str(_status(pod).get("reason") or "")


def derive_pod_state(pod: Obj) -> tuple[PodState, str]:
    """How far one pod got, and a short note (a waiting reason, an exit code)."""
    if _meta(pod).get("deletionTimestamp"):
        return PodState.TERMINATING, ""
    phase = _status(pod).get("phase")
    if phase == "Succeeded":
        return PodState.COMPLETED, ""
    if phase == "Failed":
        return PodState.FAILED, _exit_note(pod)
    scheduled, reason = _condition_status(pod, "PodScheduled")
    if not (pod.get("spec") or {}).get("nodeName") and scheduled != "True":
        return (PodState.UNSCHEDULABLE, "") if reason == "Unschedulable" else (PodState.PENDING, "")
    init = list(_status(pod).get("initContainerStatuses") or [])
    main = list(_status(pod).get("containerStatuses") or [])
    if not main and not init:
        return PodState.SCHEDULED, ""
    for container in (*init, *main):
        waiting = str(((container.get("state") or {}).get("waiting") or {}).get("reason") or "")
        if waiting in BACK_OFF_REASONS:
            return PodState.BACKING_OFF, waiting
    if any("running" in (c.get("state") or {}) for c in init):
        return PodState.FETCHING_CODE, ""
    if any(((c.get("state") or {}).get("waiting") or {}).get("reason") == "ContainerCreating" for c in init):
        return PodState.PULLING_IMAGE, ""
    if main and all("running" in (c.get("state") or {}) for c in main):
        ready, _ = _condition_status(pod, "Ready")
        return (PodState.READY if ready == "True" else PodState.RUNNING), ""
    return PodState.PULLING_IMAGE, ""


def _newest(pods: Iterable[Obj]) -> Obj | None:
    ordered = sorted(
        pods, key=lambda p: (str(_meta(p).get("creationTimestamp") or ""), int(_version(p)), _name(p))
    )
    return ordered[-1] if ordered else None


def _version(pod: Obj) -> str:
    version = str(_meta(pod).get("resourceVersion") or "")
    return version if version.isdigit() else "0"


def _name(pod: Obj) -> str:
    return str(_meta(pod).get("name") or "")


def derive_job_phase(job: Obj, pods: Iterable[Obj], *, attempts_allowed: int) -> StagePhase:
    """A batch stage's phase: the newest pod of its Job, and which attempt that pod is."""
    own = select_job_pods(job, pods)
    counted = sum(
        value
        for value in (_status(job).get(k) for k in ("failed", "succeeded", "active"))
        if isinstance(value, int) and not isinstance(value, bool)
    )
    newest = _newest(own)
    if newest is None:
        return StagePhase(PodState.NONE, attempt=counted, attempts_allowed=attempts_allowed)
    state, note = derive_pod_state(newest)
    if state is PodState.READY:  # a running pod without probes is Ready; for a Job that says nothing more
        state = PodState.RUNNING
    return StagePhase(
        state,
        note,
        attempt=len(own),  # the newest pod's place: the Job's own counts may already include a next one
        attempts_allowed=attempts_allowed,
        restarts=_restarts(newest),
    )


# The order pods of a rollout are summarised in: the one that got least far says what is still awaited.
_PROGRESS_ORDER = (
    PodState.UNSCHEDULABLE,
    PodState.BACKING_OFF,
    PodState.FAILED,
    PodState.PENDING,
    PodState.SCHEDULED,
    PodState.PULLING_IMAGE,
    PodState.FETCHING_CODE,
    PodState.RUNNING,
    PodState.READY,
)


def derive_deployment_phase(deployment: Obj, pods: Iterable[Obj]) -> StagePhase:
    """A service stage's phase: ready pods of the new revision out of the replicas wanted, and the
    state of the pod that got least far (what the rollout still waits for)."""
    wanted = (deployment.get("spec") or {}).get("replicas", 1)
    wanted = max(wanted, 1) if isinstance(wanted, int) and not isinstance(wanted, bool) else 1
    current = select_template_pods(deployment, pods)
    states = [derive_pod_state(p) for p in current]
    ready = sum(1 for state, _ in states if state is PodState.READY)
    # The Deployment's own count arrives on the event that ends the rollout; pod events may lag it.
    status = _status(deployment)
    generation = _meta(deployment).get("generation")
    if isinstance(generation, int) and status.get("observedGeneration") == generation:
        counts = [status.get("updatedReplicas"), status.get("availableReplicas")]
        if all(isinstance(c, int) for c in counts):
            ready = max(ready, min(c for c in counts if isinstance(c, int)))
    ready = min(ready, wanted)
    if not states:
        return StagePhase(PodState.NONE, ready=ready, wanted=wanted)
    if ready >= wanted:
        return StagePhase(PodState.READY, ready=ready, wanted=wanted, restarts=sum(map(_restarts, current)))
    state, note = min(
        (s for s in states if s[0] in _PROGRESS_ORDER),
        key=lambda s: _PROGRESS_ORDER.index(s[0]),
        default=(PodState.RUNNING, ""),
    )
    return StagePhase(state, note, ready=ready, wanted=wanted, restarts=sum(map(_restarts, current)))
