"""Ctrl+C to ``python -m bodywork_action run --local``: one result line, worded for a local run."""

from __future__ import annotations

from testing.local_runs import Project, free_port, is_gone, read_records, set_service_port, start_cli


def result_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("local-test: ")]


def test_ctrl_c_while_serving_prints_the_result_once_without_a_namespace(project: Project) -> None:
    set_service_port(project, free_port())
    cli = start_cli(project, "run", "--local", "--reuse-env")
    cli.wait_for("serving: serve at http://127.0.0.1:")

    cli.interrupt()
    code, output, _ = cli.finish()

    assert code == 0, output
    (line,) = result_lines(output)
    assert line.endswith("(4/4 stages succeeded, on this machine)"), line
    assert "namespace" not in output
    assert output.count("services stopped") == 1
    assert is_gone(read_records(project.out_dir, "serve")[0]["pid"])


def test_ctrl_c_during_a_batch_stage_is_a_cancelled_run_said_once(project: Project) -> None:
    set_service_port(project, free_port())
    config = project.config_file
    hanging = config.read_text().replace('work.py\n    args: ["left", "0.5"]', 'hang.py\n    args: ["left"]')
    config.write_text(hanging)
    cli = start_cli(project, "run", "--local", "--reuse-env")
    cli.wait_for("left    | hanging")

    cli.interrupt()
    code, output, _ = cli.finish()

    assert code == 130, output
    (line,) = result_lines(output)
    assert line.startswith("local-test: cancelled in "), line
    assert line.endswith("(1/4 stages succeeded, on this machine)"), line
    assert "namespace" not in output
    (left,) = read_records(project.out_dir, "left")
    assert is_gone(left["pid"]) and is_gone(left["child_pid"])
