"""From what the deploy engine observes to ``Progress`` events: a stage's phase when it changes, the
smoke test's request and answer, and the decisions (verdict changes, retries, rollbacks) as debug
events.

The deploy engine (``kube/deploy.py``) calls this after each watch event it already received, with
the objects it already holds; nothing here asks the cluster anything. Every text is redacted before
it is reported: debug lines carry API paths and verdict messages, never Secret bodies, and the
redactor is applied anyway.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.model import Pipeline, Stage
from bodywork_action.redact import Redactor
from bodywork_action.stage_phase import StagePhase, derive_deployment_phase, derive_job_phase
from bodywork_action.verdicts import Obj, Verdict

Reporter = Callable[[Progress], None]


class StageProgress:
    """Reports each stage's phase and verdict only when it changed; thread-safe (stages run together)."""

    def __init__(self, pipeline: Pipeline, report: Reporter, *, redactor: Redactor | None = None) -> None:
        self._report = report
        self.redactor = redactor or Redactor()
        self._steps: dict[str, int] = {
            s.name: n for n, step in enumerate(pipeline.step_stages(), start=1) for s in step
        }
        self._phases: dict[str, StagePhase] = {}
        self._verdicts: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()

    def _step(self, stage: str) -> int:
        return self._steps.get(stage, 0)  # 0: the run_on_failure stage

    def observe_job(self, stage: Stage, job: Obj, pods: Iterable[Obj]) -> None:
        allowed = stage.batch.retries + 1 if stage.batch is not None else 1
        self.phase(stage.name, derive_job_phase(job, pods, attempts_allowed=allowed))

    def observe_deployment(self, stage: Stage, deployment: Obj, pods: Iterable[Obj]) -> None:
        self.phase(stage.name, derive_deployment_phase(deployment, pods))

    def phase(self, stage: str, phase: StagePhase) -> None:
        with self._lock:
            previous = self._phases.get(stage)
            self._phases[stage] = phase
        if phase != previous:
            self._report(Progress(ProgressKind.STAGE_PHASE, self._step(stage), (stage,), phase=phase))
            if previous is not None and phase.attempt > previous.attempt > 0:
                self.debug(f"{stage}: retrying, attempt {phase.attempt} of {phase.attempts_allowed}")

    def verdict(self, stage: str, verdict: Verdict) -> None:
        """A debug line when the verdict (phase, reason or message) changed."""
        key = (verdict.phase.value, verdict.reason, verdict.message)
        with self._lock:
            changed = self._verdicts.get(stage) != key
            self._verdicts[stage] = key
        if changed:
            why = ": ".join(part for part in (verdict.reason, verdict.message) if part)
            self.debug(f"{stage}: verdict {verdict.phase.value}" + (f" ({why})" if why else ""))

    def smoke_test(self, stage: str, path: str, status: int, seconds: float) -> None:
        ok = 200 <= status < 300
        detail = self.redactor.redact(f"smoke test GET {path} -> {status} in {seconds * 1000:.0f} ms")
        self._report(Progress(ProgressKind.SMOKE_TEST, self._step(stage), (stage,), detail=detail, ok=ok))

    def debug(self, text: str) -> None:
        self._report(Progress(ProgressKind.DEBUG, 0, (), detail=self.redactor.redact(text)))
