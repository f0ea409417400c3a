"""The executor's semantics over a scripted Backend: order, concurrency, failure, rollback, cancel.

The cluster and local backends are tested end to end elsewhere; here a backend that follows a script
makes every branch of the step logic deterministic.
"""

from __future__ import annotations

import signal
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from bodywork_action.executor import Progress, ProgressKind, execute, start_in_thread
from bodywork_action.model import Pipeline, Stage
from bodywork_action.results import DeploymentResult, DeploymentStatus, StageResult, StageStatus
from bodywork_action.rollback import format_atomic_rollback
from bodywork_action.selection import select_stages
from testing.builders import batch, pipeline, service


@dataclass
class ScriptedBackend:
    fail: set[str] = field(default_factory=set)
    target: str = "scripted"
    barrier: threading.Barrier | None = None  # stages that must all be running at once
    cancel_on: str = ""
    ran: list[str] = field(default_factory=list)
    rolled_back: list[str] = field(default_factory=list)
    finished: list[DeploymentResult] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start_stage(self, stage: Stage, *, cancel: threading.Event) -> Future[StageResult]:
        return start_in_thread(lambda: self.run_stage(stage, cancel=cancel), name=f"stage-{stage.name}")

    def run_stage(self, stage: Stage, *, cancel: threading.Event) -> StageResult:
        with self.lock:
            self.ran.append(stage.name)
        if self.barrier is not None and stage.name in ("b", "c"):
            self.barrier.wait(timeout=10)  # raises BrokenBarrierError unless both run concurrently
        if stage.name == self.cancel_on:
            cancel.set()
            return StageResult(stage.name, stage.kind, StageStatus.CANCELLED, started_at=1.0)
        status = StageStatus.FAILED if stage.name in self.fail else StageStatus.SUCCEEDED
        reason = "BackoffLimitExceeded" if status is StageStatus.FAILED else ""
        return StageResult(
            stage.name, stage.kind, status, attempts=1, started_at=1.0, finished_at=2.0, reason=reason
        )

    def rollback_stage(self, stage: Stage, result: StageResult, *, atomic: bool = False) -> StageResult:
        self.rolled_back.append(f"{stage.name} (atomic)" if atomic else stage.name)
        return result.evolve(rolled_back=True)

    def finish(self, pipeline: Pipeline, result: DeploymentResult) -> DeploymentResult:
        self.finished.append(result)
        return result


DIAMOND = pipeline(
    "a >> b,c >> d",
    batch("a"),
    batch("b"),
    service("c"),
    batch("d"),
    batch("undo"),
    name="p",
    run_on_failure="undo",
)


def test_steps_run_in_order_and_stages_of_a_step_concurrently() -> None:
    backend = ScriptedBackend(barrier=threading.Barrier(2))
    events: list[Progress] = []
    result = execute(DIAMOND, backend, report=events.append)
    assert result.status is DeploymentStatus.SUCCEEDED
    assert backend.ran[0] == "a" and set(backend.ran[1:3]) == {"b", "c"} and backend.ran[3] == "d"
    assert [r.stage for r in result.stages] == ["a", "b", "c", "d"]
    kinds = [
        (e.kind, e.step) for e in events if e.kind in (ProgressKind.STEP_STARTED, ProgressKind.STEP_FINISHED)
    ]
    assert kinds == [
        (ProgressKind.STEP_STARTED, 1),
        (ProgressKind.STEP_FINISHED, 1),
        (ProgressKind.STEP_STARTED, 2),
        (ProgressKind.STEP_FINISHED, 2),
        (ProgressKind.STEP_STARTED, 3),
        (ProgressKind.STEP_FINISHED, 3),
    ]
    assert backend.finished == [result] and "undo" not in backend.ran


def test_a_failed_step_stops_later_steps_and_runs_the_failure_stage() -> None:
    backend = ScriptedBackend(fail={"b"})
    result = execute(DIAMOND, backend)
    assert result.status is DeploymentStatus.FAILED
    assert "d" not in backend.ran and backend.ran[-1] == "undo"
    assert result.stage("d").status is StageStatus.SKIPPED
    assert result.stage("c").status is StageStatus.SUCCEEDED  # its sibling finished normally
    on_failure = result.stages[-1]
    assert on_failure.run_on_failure and on_failure.stage == "undo"
    assert result.message == "step 2 failed: b (BackoffLimitExceeded)"
    assert backend.rolled_back == []  # batch stages have nothing to roll back


def test_a_failed_service_is_rolled_back() -> None:
    backend = ScriptedBackend(fail={"c"})
    result = execute(DIAMOND, backend)
    assert backend.rolled_back == ["c"] and result.stage("c").rolled_back
    assert result.status is DeploymentStatus.FAILED


def test_cancel_marks_the_rest_cancelled_and_skips_the_failure_stage() -> None:
    backend = ScriptedBackend(cancel_on="a")
    result = execute(DIAMOND, backend)
    assert result.status is DeploymentStatus.CANCELLED
    assert backend.ran == ["a"]
    assert [r.status for r in result.stages] == [StageStatus.CANCELLED] * 4
    assert result.message == "cancelled while running: a"


def test_result_json_lists_every_stage() -> None:
    result = execute(DIAMOND, ScriptedBackend(fail={"d"}))
    document = result.to_json()
    assert [s["stage"] for s in document["stages"]] == ["a", "b", "c", "d", "undo"]
    assert document["status"] == "failed"
    assert (
        result.one_line().startswith("p: failed in ")
        and "failed: d (BackoffLimitExceeded)" in result.one_line()
    )


def test_an_error_that_ends_the_run_stops_the_other_stages_of_its_step_at_once() -> None:
    from bodywork_action.errors import ClusterAuthError

    sibling_saw_cancel, sibling_running = threading.Event(), threading.Event()

    class RefusedBackend(ScriptedBackend):
        def run_stage(self, stage: Stage, *, cancel: threading.Event) -> StageResult:
            if stage.name == "b":
                sibling_running.wait(30)  # refused while its sibling is already running
                raise ClusterAuthError("forbidden (403): cannot create ingresses", status=403)
            if stage.name == "c":  # a long-running sibling: it ends only when told to stop
                sibling_running.set()
                if cancel.wait(120):
                    sibling_saw_cancel.set()
                return StageResult(stage.name, stage.kind, StageStatus.CANCELLED, started_at=1.0)
            return super().run_stage(stage, cancel=cancel)

    cancel = threading.Event()
    try:
        execute(DIAMOND, RefusedBackend(), cancel=cancel)
    except ClusterAuthError as exc:
        assert "forbidden" in str(exc)
    else:
        raise AssertionError("the refused request should end the run")
    assert sibling_saw_cancel.is_set(), "the sibling ran on instead of being stopped"


def test_a_signal_taken_by_another_thread_still_stops_the_run() -> None:
    # The kernel hands a process's signal to any thread that doesn't block it; Python runs the
    # handler only on the main thread, and only once that thread wakes. The executor must wake.
    stage_running = threading.Event()

    class WaitingBackend(ScriptedBackend):
        def run_stage(self, stage: Stage, *, cancel: threading.Event) -> StageResult:
            stage_running.set()
            stopped = cancel.wait(20)  # a stage that runs until told to stop (or 20 s: the test failed)
            status = StageStatus.CANCELLED if stopped else StageStatus.SUCCEEDED
            return StageResult(stage.name, stage.kind, status, started_at=1.0)

    cancel = threading.Event()

    def signal_from_another_thread() -> None:
        stage_running.wait(20)
        time.sleep(0.5)  # let the main thread settle into its wait (else it may just run the handler)
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # taken by this thread, not main

    previous = signal.signal(signal.SIGUSR1, lambda _signum, _frame: cancel.set())
    try:
        threading.Thread(target=signal_from_another_thread, daemon=True).start()
        result = execute(pipeline("a", batch("a"), name="p"), WaitingBackend(), cancel=cancel)
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert result.status is DeploymentStatus.CANCELLED
    assert result.stages[0].status is StageStatus.CANCELLED, "the handler ran only once the stage ended"


ATOMIC = pipeline(
    "a >> b,c >> d,e",
    batch("a"),
    service("b"),
    service("c"),
    service("d"),
    batch("e"),
    name="p",
)


def test_an_atomic_run_that_fails_rolls_back_every_service_it_changed_latest_first() -> None:
    backend = ScriptedBackend(fail={"e"})
    result = execute(ATOMIC, backend, atomic=True)
    assert result.status is DeploymentStatus.FAILED and result.atomic
    assert backend.rolled_back == ["d (atomic)", "c (atomic)", "b (atomic)"]
    assert all(result.stage(name).rolled_back for name in ("b", "c", "d"))
    assert not result.stage("a").rolled_back  # batch stages are reported, not undone


def test_an_atomic_run_rolls_back_a_failed_service_once_and_the_others_atomically() -> None:
    backend = ScriptedBackend(fail={"c"})
    execute(ATOMIC, backend, atomic=True)
    assert backend.rolled_back == ["c", "b (atomic)"]  # d never ran: step 3 was skipped


def test_an_atomic_run_that_succeeds_or_is_not_atomic_rolls_nothing_back() -> None:
    succeeded, plain = ScriptedBackend(), ScriptedBackend(fail={"e"})
    assert execute(ATOMIC, succeeded, atomic=True).succeeded
    execute(ATOMIC, plain)
    assert succeeded.rolled_back == [] and plain.rolled_back == []


def test_a_cancelled_atomic_run_rolls_back_the_services_that_ran() -> None:
    backend = ScriptedBackend(cancel_on="e")
    result = execute(ATOMIC, backend, atomic=True)
    assert result.status is DeploymentStatus.CANCELLED
    assert backend.rolled_back == ["d (atomic)", "c (atomic)", "b (atomic)"]


# --- partial runs (--only, --from-step) ---------------------------------------------------------------


def test_a_partial_run_runs_only_its_stages_keeping_step_numbers_and_says_why_the_rest_skipped() -> None:
    backend = ScriptedBackend()
    events: list[Progress] = []
    result = execute(
        DIAMOND, backend, report=events.append, selection=select_stages(DIAMOND, only=("c", "d"))
    )

    assert result.succeeded and backend.ran == ["c", "d"]
    started = [(e.step, e.stages) for e in events if e.kind is ProgressKind.STEP_STARTED]
    assert started == [(2, ("c",)), (3, ("d",))]
    assert [(r.stage, r.status, r.reason) for r in result.stages[:2]] == [
        ("a", StageStatus.SKIPPED, "not selected (--only)"),
        ("b", StageStatus.SKIPPED, "not selected (--only)"),
    ]
    assert result.selection == "--only c, d"


def test_a_selected_stage_that_fails_still_runs_the_failure_stage_and_skips_the_rest_plainly() -> None:
    backend = ScriptedBackend(fail={"b"})
    result = execute(DIAMOND, backend, selection=select_stages(DIAMOND, from_step=2))

    assert backend.ran == ["b", "c", "undo"]
    assert [(r.stage, r.status, r.reason) for r in result.stages] == [
        ("a", StageStatus.SKIPPED, "before --from-step 2"),
        ("b", StageStatus.FAILED, "BackoffLimitExceeded"),
        ("c", StageStatus.SUCCEEDED, ""),
        ("d", StageStatus.SKIPPED, ""),  # skipped because step 2 failed: no selection reason
        ("undo", StageStatus.SUCCEEDED, ""),
    ]
    assert result.message == "step 2 failed: b (BackoffLimitExceeded)"


def test_an_atomic_partial_run_rolls_back_only_selected_services_and_reports_only_batches_that_ran() -> None:
    backend = ScriptedBackend(fail={"e"})
    result = execute(ATOMIC, backend, atomic=True, selection=select_stages(ATOMIC, only=("c", "e")))
    assert result.status is DeploymentStatus.FAILED
    assert backend.ran == ["c", "e"]
    assert backend.rolled_back == ["c (atomic)"]  # b and d were left out: never touched, never undone
    assert [(r.stage, r.status, r.rolled_back) for r in result.stages] == [
        ("a", StageStatus.SKIPPED, False),
        ("b", StageStatus.SKIPPED, False),
        ("c", StageStatus.SUCCEEDED, True),
        ("d", StageStatus.SKIPPED, False),
        ("e", StageStatus.FAILED, False),
    ]
    assert format_atomic_rollback(result) == [
        "Rolled back (atomic): c (previous revision)",
        "Batch stages that ran are not undone: e",
    ]


def test_a_cancelled_atomic_run_from_a_later_step_leaves_the_earlier_services_alone() -> None:
    backend = ScriptedBackend(cancel_on="e")
    result = execute(ATOMIC, backend, atomic=True, selection=select_stages(ATOMIC, from_step=3))
    assert result.status is DeploymentStatus.CANCELLED
    assert backend.rolled_back == ["d (atomic)"]  # b and c (step 2) were before --from-step 3
    assert [r.stage for r in result.stages if r.status is StageStatus.SKIPPED] == ["a", "b", "c"]
