"""``run --local --only`` / ``--from-step``: only the selected stages run here, in the DAG's order."""

from __future__ import annotations

from bodywork_action.results import DeploymentStatus, StageStatus
from bodywork_action.selection import select_stages
from testing.local_runs import Project, free_port, read_records, standard_pipeline


def test_a_local_run_from_step_two_runs_only_the_later_steps(project: Project) -> None:
    pipeline = standard_pipeline(free_port())  # prepare >> left,right >> serve

    run = project.run(pipeline, select=lambda loaded: select_stages(loaded, from_step=2))

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    assert read_records(project.out_dir, "prepare") == []
    assert [r.stage for r in run.result.stages if r.status is StageStatus.SUCCEEDED] == [
        "left",
        "right",
        "serve",
    ]
    assert run.result.stage("prepare").reason == "before --from-step 2"
