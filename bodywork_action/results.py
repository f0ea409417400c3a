"""What a deployment (or a local run) produced: one frozen result per stage, and their aggregate.

Pure data plus its JSON form (the action's ``stages`` output). The executor builds these; the CLI's
final table, the job summary and the outputs only read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from bodywork_action.errors import EXIT_DEPLOYMENT_FAILED, EXIT_INTERRUPTED, EXIT_OK
from bodywork_action.model import StageKind, StageName


class StageStatus(str, Enum):
    PENDING = "pending"  # not started yet (or never, after an earlier failure)
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"  # a later step that never started because an earlier one failed
    CANCELLED = "cancelled"  # stopped by Ctrl+C / SIGTERM


@dataclass(frozen=True)
class EventRecord:
    """A Kubernetes Event (or local equivalent) related to a failed stage."""

    reason: str
    message: str
    object: str = ""  # e.g. "Pod/train-7f9c-abcde"
    type: str = "Warning"
    count: int = 1


@dataclass(frozen=True)
class StageResult:
    stage: StageName
    kind: StageKind
    status: StageStatus = StageStatus.PENDING
    attempts: int = 0
    started_at: float | None = None  # epoch seconds
    finished_at: float | None = None
    reason: str = ""  # short machine-ish reason: "BackoffLimitExceeded", "CrashLoopBackOff", ...
    message: str = ""  # one human sentence explaining the reason
    url: str = ""  # in-cluster (or local) service URL
    ingress_path: str = ""
    rolled_back: bool = False
    rollback_removed: bool = False  # rolled back by removing it: this run had created it
    rollback_error: str = ""  # a rollback was due and could not be done: what is left, and why
    events: tuple[EventRecord, ...] = ()
    logs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # "pod/container" -> last lines
    run_on_failure: bool = False  # this result is of the pipeline's run_on_failure stage

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)

    def evolve(self, **changes: Any) -> StageResult:
        return replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        duration = self.duration_seconds
        return {
            "stage": self.stage,
            "type": self.kind.value,
            "status": self.status.value,
            "attempts": self.attempts,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "duration_seconds": None if duration is None else round(duration, 3),
            "reason": self.reason,
            "message": self.message,
            "url": self.url,
            "ingress_path": self.ingress_path,
            "rolled_back": self.rolled_back,
            "rollback_error": self.rollback_error,
            "run_on_failure": self.run_on_failure,
        }


LOCAL_TARGET = "local"  # DeploymentResult.target of a local run (processes on this machine)


class DeploymentStatus(str, Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class DeploymentResult:
    pipeline: str
    namespace: str
    steps: tuple[tuple[StageName, ...], ...]
    stages: tuple[StageResult, ...]  # every DAG stage in step order, then run_on_failure if it ran
    status: DeploymentStatus
    started_at: float
    finished_at: float
    commit: str = ""
    target: str = ""  # "cluster <server>" or "local"
    message: str = ""  # one line: why it failed, or what was left behind
    dry_run: bool = False  # every object was sent with dryRun=All; no stage ran
    atomic: bool = False  # on failure every service this run changed was to be rolled back
    selection: str = ""  # a partial run: what was selected ("--only b, c", "--from-step 2")

    @property
    def duration_seconds(self) -> float:
        return max(0.0, self.finished_at - self.started_at)

    @property
    def succeeded(self) -> bool:
        return self.status is DeploymentStatus.SUCCEEDED

    @property
    def exit_code(self) -> int:
        """The process exit code this result means, for the CLI and the action alike."""
        return {
            DeploymentStatus.SUCCEEDED: EXIT_OK,
            DeploymentStatus.FAILED: EXIT_DEPLOYMENT_FAILED,
            DeploymentStatus.CANCELLED: EXIT_INTERRUPTED,
        }[self.status]

    def stage(self, name: str) -> StageResult:
        for result in self.stages:
            if result.stage == name and not result.run_on_failure:
                return result
        raise KeyError(name)

    @property
    def failed_stages(self) -> tuple[StageResult, ...]:
        return tuple(r for r in self.stages if r.status is StageStatus.FAILED)

    @property
    def service_urls(self) -> dict[str, str]:
        return {r.stage: r.url for r in self.stages if r.kind is StageKind.SERVICE and r.url}

    def one_line(self) -> str:
        if self.dry_run:
            rejected = [r.stage for r in self.failed_stages]
            line = f"{self.pipeline}: dry run {self.status.value} in {self.duration_seconds:.1f}s "
            line += f"(nothing applied, namespace {self.namespace})"
            return line + (f"; rejected: {', '.join(rejected)}" if rejected else "")
        done = sum(1 for r in self.stages if r.status is StageStatus.SUCCEEDED and not r.run_on_failure)
        total = sum(1 for r in self.stages if not r.run_on_failure)
        # A local run has no namespace: its stages ran as processes on this machine.
        where = "on this machine" if self.target == LOCAL_TARGET else f"namespace {self.namespace}"
        line = (
            f"{self.pipeline}: {self.status.value} in {self.duration_seconds:.1f}s "
            f"({done}/{total} stages succeeded, {where})"
        )
        failed = [r for r in self.failed_stages if not r.run_on_failure]
        if failed:
            line += "; failed: " + ", ".join(f"{r.stage} ({r.reason or 'failed'})" for r in failed)
        if self.selection:
            line += f"; partial run ({self.selection}): the other stages were left as they were"
        return line + self._atomic_outcome()

    def _atomic_outcome(self) -> str:
        if not self.atomic or self.succeeded:
            return ""
        broken = [r for r in self.stages if r.rollback_error]
        if broken:
            left = ", ".join(f"{r.stage} ({r.rollback_error})" for r in broken)
            return f"; ATOMIC ROLLBACK INCOMPLETE, services left half-applied: {left}"
        if any(r.rolled_back for r in self.stages):
            return "; atomic: the pipeline's services were left at their previous revision"
        return "; atomic: no service had been changed"

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "namespace": self.namespace,
            "status": self.status.value,
            "commit": self.commit,
            "duration_seconds": round(self.duration_seconds, 3),
            "dry_run": self.dry_run,
            "stages": [r.to_json() for r in self.stages],
        }


# --------------------------------------------------------------- what is deployed (status, delete)


@dataclass(frozen=True)
class StageState:
    stage: str  # the user's stage name when known (annotation), else its Kubernetes name
    kind: str  # "batch" or "service"
    status: str  # "running" / "succeeded" / "failed"
    object: str  # "Job/train-1a2b3c" or "Deployment/serve"
    commit: str = ""
    reason: str = ""
    message: str = ""
    url: str = ""
    ingress_path: str = ""
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PipelineState:
    pipeline: str
    namespace: str
    namespace_exists: bool
    namespace_created_by_tool: bool
    stages: tuple[StageState, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "namespace": self.namespace,
            "namespace_exists": self.namespace_exists,
            "namespace_created_by_tool": self.namespace_created_by_tool,
            "stages": [s.to_json() for s in self.stages],
        }


@dataclass(frozen=True)
class DeleteResult:
    pipeline: str
    namespace: str
    deleted: tuple[str, ...] = ()  # "Kind/name"
    namespace_deleted: bool = False
    message: str = ""
    dry_run: bool = False
