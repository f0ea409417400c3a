"""Batch stages locally: retries, the per-attempt time limit (the whole process tree dies), run_on_failure."""

from __future__ import annotations

import os

from bodywork_action.results import DeploymentStatus, StageStatus
from testing.local_runs import (
    Project,
    batch,
    build_pipeline,
    free_port,
    is_gone,
    read_records,
    standard_pipeline,
)


def test_a_failing_stage_is_retried_until_it_succeeds(project: Project) -> None:
    counter = project.root / "counter"
    flaky = batch("prepare", "flaky.py", str(counter), "3", retries=2)

    run = project.run(standard_pipeline(free_port(), prepare=flaky))

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert run.result.stage("prepare").attempts == 3
    assert counter.read_text() == "3"
    assert "attempt 1 exited with code 1; retrying (2 left)" in run.output


def test_a_stage_that_keeps_failing_fails_the_run_after_its_retries_and_later_steps_are_skipped(
    project: Project,
) -> None:
    counter = project.root / "counter"
    flaky = batch("prepare", "flaky.py", str(counter), "5", retries=1)

    run = project.run(standard_pipeline(free_port(), prepare=flaky))

    assert run.result.status is DeploymentStatus.FAILED
    prepare = run.result.stage("prepare")
    assert (prepare.status, prepare.reason, prepare.attempts) == (StageStatus.FAILED, "Error", 2)
    assert "run 2 of 5: failing" in prepare.logs["prepare"]
    assert counter.read_text() == "2"
    assert run.result.stage("serve").status is StageStatus.SKIPPED
    assert read_records(project.out_dir, "left") == []


def test_the_time_limit_kills_the_whole_process_tree(project: Project) -> None:
    hang = batch("prepare", "hang.py", limit_seconds=1)

    run = project.run(standard_pipeline(free_port(), prepare=hang), grace_seconds=1.0)

    prepare = run.result.stage("prepare")
    assert (prepare.status, prepare.reason) == (StageStatus.FAILED, "DeadlineExceeded")
    (started,) = read_records(project.out_dir, "prepare")
    assert is_gone(started["pid"])
    assert is_gone(started["child_pid"])


def test_run_on_failure_runs_once_after_a_failed_step(project: Project) -> None:
    pipeline = build_pipeline(
        "prepare >> left",
        batch("prepare", "flaky.py", str(project.root / "counter"), "9"),
        batch("left", "work.py"),
        batch("cleanup", "on_failure.py"),
        run_on_failure="cleanup",
    )

    run = project.run(pipeline)

    assert run.result.status is DeploymentStatus.FAILED
    assert [r.stage for r in run.result.stages if r.run_on_failure] == ["cleanup"]
    assert run.result.stages[-1].status is StageStatus.SUCCEEDED
    assert len(read_records(project.out_dir, "cleanup")) == 1
    assert read_records(project.out_dir, "left") == []


def test_run_on_failure_does_not_run_when_everything_succeeds(project: Project) -> None:
    pipeline = build_pipeline(
        "prepare", batch("prepare", "work.py"), batch("cleanup", "on_failure.py"), run_on_failure="cleanup"
    )

    run = project.run(pipeline)

    assert run.result.status is DeploymentStatus.SUCCEEDED
    assert read_records(project.out_dir, "cleanup") == []
    assert os.path.exists(project.out_dir / "prepare.jsonl")


def test_a_stage_killed_by_sigkill_is_reported_as_killed_without_a_traceback(project: Project) -> None:
    (project.root / "oom.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    killed = batch("prepare", "oom.py", retries=0)

    run = project.run(standard_pipeline(free_port(), prepare=killed))

    assert run.result.status is DeploymentStatus.FAILED
    prepare = run.result.stage("prepare")
    assert prepare.status is StageStatus.FAILED
    assert "Traceback" not in run.output and "Traceback" not in "\n".join(prepare.logs.get("prepare", ()))
    assert prepare.message.startswith("was killed by SIGKILL")
