"""Walks the DAG over a ``Backend``: step by step, the stages of a step concurrently.

The executor owns ordering, concurrency, what a failure means for later steps, rollback of failed
service rollouts (and, for an atomic deploy, of every service the run changed), ``run_on_failure`` and
cancellation (Ctrl+C / SIGTERM). It knows nothing of
Kubernetes or processes: the cluster backend (``deploy.py``) and the local backend (``local.py``)
implement how one stage is run and awaited.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from bodywork_action.interruptible import next_item, result_of
from bodywork_action.model import Pipeline, Stage
from bodywork_action.results import DeploymentResult, DeploymentStatus, StageResult, StageStatus
from bodywork_action.selection import EVERY_STAGE, StageSelection
from bodywork_action.stage_phase import StagePhase


class Backend(Protocol):
    """Runs stages somewhere and tells their verdicts."""

    target: str  # shown in results: "cluster https://…" or "local"

    def start_stage(self, stage: Stage, *, cancel: threading.Event) -> Future[StageResult]:
        """Start ``stage``; the future ends when it succeeded, failed, or ``cancel`` was set.

        Never fails for a stage failure: failures are results. The future holds an error only for
        what makes the whole run impossible (e.g. the cluster became unreachable), which stops the
        executor. Must not block: every stage of a step is started at once, and how many threads
        that takes is the backend's business (the cluster's: none per stage).
        """
        ...

    def rollback_stage(self, stage: Stage, result: StageResult, *, atomic: bool = False) -> StageResult:
        """Undo a failed service rollout (the previous revision kept serving); return the updated result.

        ``atomic``: undo everything this run changed of the service stage, whatever its result: put
        it back as it was before the run touched it (or remove it if the run created it) and wait
        until it is available again. A rollback that could not be done says so in the result
        (``rollback_error``); it never raises for that.
        """
        ...

    def finish(self, pipeline: Pipeline, result: DeploymentResult) -> DeploymentResult:
        """Called once at the end (success or not): prune, detach, summarise what was left behind."""
        ...


class ProgressKind(str, Enum):
    STEP_STARTED = "step-started"
    STAGE_STARTED = "stage-started"
    STAGE_FINISHED = "stage-finished"
    STEP_FINISHED = "step-finished"
    ROLLED_BACK = "rolled-back"
    ROLLING_BACK = "rolling-back"  # an atomic deploy puts its services back; ``stages`` says which
    FAILURE_STAGE_STARTED = "failure-stage-started"
    WAITING = "waiting"  # for the cluster before anything is applied; ``detail`` says on what
    STAGE_PHASE = "stage-phase"  # a running stage's ``phase`` changed (scheduled, running, ready 1/2...)
    SMOKE_TEST = "smoke-test"  # ``detail``: the request and its answer; ``ok``: whether it passed
    DEBUG = "debug"  # ``detail``: one API call or decision, shown only when debugging
    WARNING = "warning"  # ``detail``: something that will likely fail a stage, found before applying it


@dataclass(frozen=True)
class Progress:
    kind: ProgressKind
    step: int  # 1-based; 0 for the run_on_failure stage
    stages: tuple[str, ...]
    result: StageResult | None = None
    detail: str = ""
    phase: StagePhase | None = None  # STAGE_PHASE only
    ok: bool = True  # SMOKE_TEST: the answer was 2xx


Reporter = Callable[[Progress], None]


def _ignore(_: Progress) -> None:
    return None


def execute(
    pipeline: Pipeline,
    backend: Backend,
    *,
    report: Reporter = _ignore,
    cancel: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
    commit: str = "",
    atomic: bool = False,
    selection: StageSelection = EVERY_STAGE,
) -> DeploymentResult:
    """Run every step of ``pipeline`` on ``backend`` and aggregate the results.

    A failed stage is a result, not an exception: only errors that make the run impossible raise.
    ``atomic``: if the run does not succeed (a stage failed, it was cancelled, or an error ended it),
    every service stage it changed is rolled back too, so its services are all new or all old; batch
    stages that ran are reported, not undone.
    ``selection``: a partial run runs only its stages (steps keep their numbers); every other stage is
    skipped with the selection's reason, as distinct from a stage skipped after a failure.
    """
    cancel = cancel or threading.Event()
    started_at = clock()
    results: dict[str, StageResult] = {
        stage.name: StageResult(stage=stage.name, kind=stage.kind)
        if selection.includes(stage.name)
        else selection.skipped_result(stage)
        for stage in pipeline.dag_stages
    }
    failed_step = 0
    for number, whole_step in enumerate(pipeline.step_stages(), start=1):
        step = tuple(stage for stage in whole_step if selection.includes(stage.name))
        if not step:
            continue
        if failed_step or cancel.is_set():
            for stage in step:
                results[stage.name] = results[stage.name].evolve(
                    status=StageStatus.CANCELLED if cancel.is_set() else StageStatus.SKIPPED
                )
            continue
        report(Progress(ProgressKind.STEP_STARTED, number, tuple(s.name for s in step)))
        try:
            step_results = _run_step(step, backend, cancel=cancel, report=report, number=number)
        except BaseException:
            if atomic:  # the run ends here: what it changed must not stay half-applied
                _roll_back_atomically(pipeline, backend, results, report, touched={s.name: s for s in step})
            raise
        for stage, result in zip(step, step_results, strict=True):
            if result.status is StageStatus.FAILED and stage.service is not None:
                result = backend.rollback_stage(stage, result)
                if result.rolled_back:
                    report(Progress(ProgressKind.ROLLED_BACK, number, (stage.name,), result))
            results[stage.name] = result
        report(Progress(ProgressKind.STEP_FINISHED, number, tuple(s.name for s in step)))
        if any(r.status is not StageStatus.SUCCEEDED for r in step_results):
            failed_step = number

    if atomic and (failed_step or cancel.is_set()):
        _roll_back_atomically(pipeline, backend, results, report)
    ordered = [results[stage.name] for stage in pipeline.dag_stages]
    failure_stage = pipeline.failure_stage
    if failed_step and failure_stage is not None and not cancel.is_set():
        # Bodywork skips this on Ctrl+C too; with a live cancel there is nobody left to wait for it.
        report(Progress(ProgressKind.FAILURE_STAGE_STARTED, 0, (failure_stage.name,)))
        on_failure = result_of(backend.start_stage(failure_stage, cancel=cancel)).evolve(run_on_failure=True)
        report(Progress(ProgressKind.STAGE_FINISHED, 0, (failure_stage.name,), on_failure))
        ordered.append(on_failure)

    status = (
        DeploymentStatus.CANCELLED
        if cancel.is_set()
        else DeploymentStatus.FAILED
        if failed_step
        else DeploymentStatus.SUCCEEDED
    )
    deployment = DeploymentResult(
        pipeline=pipeline.name,
        namespace=pipeline.target_namespace,
        steps=pipeline.steps,
        stages=tuple(ordered),
        status=status,
        started_at=started_at,
        finished_at=clock(),
        commit=commit,
        target=backend.target,
        message=_message(status, failed_step, ordered),
        atomic=atomic,
        selection=selection.description,
    )
    return backend.finish(pipeline, deployment)


def select_atomic_rollbacks(
    pipeline: Pipeline, results: Mapping[str, StageResult], *, touched: Mapping[str, Stage] | None = None
) -> list[Stage]:
    """The service stages an atomic deploy puts back, latest step first: every one that succeeded in
    this run, or was stopped during its rollout (``touched``: a step an error ended, whose stages
    may each have changed the cluster). A failed one was already rolled back on its own."""
    chosen: list[Stage] = []
    for stage in pipeline.dag_stages:
        if stage.service is None:
            continue
        result = results[stage.name]
        if result.rolled_back or result.rollback_error:
            continue
        stopped_midway = result.status is StageStatus.CANCELLED and bool(result.started_at)
        if result.status is StageStatus.SUCCEEDED or stopped_midway or stage.name in (touched or {}):
            chosen.append(stage)
    return chosen[::-1]


def _roll_back_atomically(
    pipeline: Pipeline,
    backend: Backend,
    results: dict[str, StageResult],
    report: Reporter,
    *,
    touched: Mapping[str, Stage] | None = None,
) -> None:
    stages = select_atomic_rollbacks(pipeline, results, touched=touched)
    if not stages:
        return
    report(Progress(ProgressKind.ROLLING_BACK, 0, tuple(s.name for s in stages)))
    for stage in stages:
        result = backend.rollback_stage(stage, results[stage.name], atomic=True)
        results[stage.name] = result
        if result.rolled_back or result.rollback_error:
            report(Progress(ProgressKind.ROLLED_BACK, 0, (stage.name,), result, detail="atomic"))


def _run_step(
    step: Sequence[Stage], backend: Backend, *, cancel: threading.Event, report: Reporter, number: int
) -> list[StageResult]:
    # Every stage of a step starts at once (Bodywork ran batch before service stages; nothing needs that).
    finished: queue.SimpleQueue[Future[StageResult]] = queue.SimpleQueue()  # in the order they end
    index_of: dict[Future[StageResult], int] = {}
    for index, stage in enumerate(step):
        report(Progress(ProgressKind.STAGE_STARTED, number, (stage.name,)))
        future = backend.start_stage(stage, cancel=cancel)
        index_of[future] = index
        future.add_done_callback(finished.put)
    results: list[StageResult | None] = [None] * len(step)
    errors: list[tuple[int, BaseException]] = []
    for _ in step:
        future = next_item(finished)  # wakes for Ctrl+C / SIGTERM too (interruptible.py)
        index = index_of[future]
        error = future.exception()
        if error is not None:
            # The run can't go on (the cluster refused us, or went away): stop the step's other
            # stages now, as on Ctrl+C, instead of letting them run to the end before anyone is told.
            cancel.set()
            errors.append((index, error))
            continue
        results[index] = future.result()
        report(Progress(ProgressKind.STAGE_FINISHED, number, (step[index].name,), results[index]))
    if errors:
        raise min(errors, key=lambda indexed: indexed[0])[1]  # the first stage's, in the step's order
    return [result for result in results if result is not None]


def start_in_thread(run: Callable[[], StageResult], *, name: str) -> Future[StageResult]:
    """``start_stage`` for a backend whose stages each need a thread to wait on (a local process)."""
    future: Future[StageResult] = Future()
    future.set_running_or_notify_cancel()

    def target() -> None:
        try:
            future.set_result(run())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name=name, daemon=True).start()
    return future


def _message(status: DeploymentStatus, failed_step: int, results: Sequence[StageResult]) -> str:
    if status is DeploymentStatus.SUCCEEDED:
        return ""
    if status is DeploymentStatus.CANCELLED:
        running = [r.stage for r in results if r.status is StageStatus.CANCELLED and r.started_at]
        return "cancelled" + (f" while running: {', '.join(running)}" if running else "")
    failed = [r for r in results if r.status is StageStatus.FAILED and not r.run_on_failure]
    names = ", ".join(f"{r.stage} ({r.reason or 'failed'})" for r in failed)
    return f"step {failed_step} failed: {names}"
