"""The overall time limit shared by the CLI's --timeout and the action's timeout-minutes (deadline.py)."""

from __future__ import annotations

import threading

from bodywork_action.deadline import Deadline
from bodywork_action.model import StageKind, StageName
from bodywork_action.results import DeploymentResult, DeploymentStatus, StageResult, StageStatus


def result_of(status: DeploymentStatus, message: str = "") -> DeploymentResult:
    stage = StageResult(stage=StageName("train"), kind=StageKind.BATCH, status=StageStatus.CANCELLED)
    return DeploymentResult(
        pipeline="demo",
        namespace="demo",
        steps=((StageName("train"),),),
        stages=(stage,),
        status=status,
        started_at=0.0,
        finished_at=1.0,
        message=message,
    )


def test_past_the_limit_the_run_is_stopped_and_its_cancel_becomes_a_failure_saying_why() -> None:
    deadline = Deadline(0.01, "timeout-minutes (1)")
    stopped = threading.Event()

    with deadline.running(stopped.set):
        assert stopped.wait(60), "the limit never stopped the run"

    failed = deadline.apply(result_of(DeploymentStatus.CANCELLED, "cancelled while running: train"))
    assert failed.status is DeploymentStatus.FAILED and failed.exit_code == 1
    assert failed.message == "timeout-minutes (1) reached; cancelled while running: train"
    # A run that ended on its own before noticing the limit keeps its own verdict.
    assert deadline.apply(result_of(DeploymentStatus.SUCCEEDED)).status is DeploymentStatus.SUCCEEDED


def test_within_the_limit_or_without_one_a_cancel_stays_a_cancel() -> None:
    for deadline in (Deadline(None, ""), Deadline(3600, "--timeout 1h")):
        stopped = threading.Event()
        with deadline.running(stopped.set):
            pass
        assert not deadline.timed_out.is_set() and not stopped.is_set()
        cancelled = result_of(DeploymentStatus.CANCELLED, "cancelled")
        assert deadline.apply(cancelled) is cancelled  # Ctrl+C: exit 130, not a time-out
