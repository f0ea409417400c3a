"""Steps run in DAG order, a step's stages run concurrently, each stage gets its environment and its log."""

from __future__ import annotations

import subprocess

from bodywork_action.results import DeploymentStatus, StageStatus
from testing.local_runs import Project, free_port, read_records, record_of, standard_pipeline


def _interval(project: Project, stage: str) -> tuple[float, float]:
    start = record_of(project.out_dir, stage, "start")["time"]
    return start, record_of(project.out_dir, stage, "end")["time"]


def test_steps_run_in_order_and_stages_of_a_step_overlap(project: Project) -> None:
    run = project.run(standard_pipeline(free_port()))

    assert run.result.status is DeploymentStatus.SUCCEEDED, run.output
    prepare_end = record_of(project.out_dir, "prepare", "end")["time"]
    left = _interval(project, "left")
    right = _interval(project, "right")
    serve_start = record_of(project.out_dir, "serve", "start")["time"]
    # Order: step 2 starts after step 1 ended, step 3 after both of step 2 ended.
    assert prepare_end <= left[0] and prepare_end <= right[0]
    assert max(left[1], right[1]) <= serve_start
    # Concurrency: each of left and right started before the other ended (sequential runs cannot overlap).
    assert left[0] < right[1] and right[0] < left[1]


def test_each_stage_output_is_prefixed_on_the_terminal_and_kept_in_its_log(project: Project) -> None:
    run = project.run(standard_pipeline(free_port()))

    assert "left    | left done" in run.output
    assert "prepare | prepare done" in run.output
    (run_dir,) = (project.state_dir / "runs").iterdir()
    assert "left done" in (run_dir / "left.log").read_text()
    assert "right done" not in (run_dir / "left.log").read_text()
    assert "listening on" in (run_dir / "serve.log").read_text()


def test_services_get_their_name_namespace_and_port_and_every_stage_the_commit(project: Project) -> None:
    subprocess.run(["git", "init", "-q"], cwd=project.root, check=True)
    subprocess.run(["git", "add", "."], cwd=project.root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", "pipeline"],
        cwd=project.root,
        check=True,
    )
    short = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=project.root, capture_output=True, text=True, check=True
    ).stdout.strip()
    port = free_port()

    run = project.run(standard_pipeline(port))

    assert run.result.commit == short
    serve_env = record_of(project.out_dir, "serve", "start")["env"]
    assert serve_env["BODYWORK_STAGE"] == "serve"
    assert serve_env["BODYWORK_NAMESPACE"] == "local-test"
    assert serve_env["BODYWORK_SERVICE_PORT"] == str(port)
    assert serve_env["GIT_COMMIT_HASH"] == short
    prepare_env = record_of(project.out_dir, "prepare", "start")["env"]
    assert prepare_env["GIT_COMMIT_HASH"] == short
    assert "BODYWORK_SERVICE_PORT" not in prepare_env
    assert run.result.stage("serve").url == f"http://127.0.0.1:{port}"
    assert all(r.status is StageStatus.SUCCEEDED for r in run.result.stages)
    assert len(read_records(project.out_dir, "serve")) == 1
