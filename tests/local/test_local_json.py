"""``run --local --format json`` (stdout: one document of result.schema.json) and ``run --local --timeout``,
through ``python -m bodywork_action`` as a real process."""

from __future__ import annotations

import json
from typing import Any

import jsonschema

from bodywork_action.result_document import read_schema
from testing.local_runs import Project, free_port, is_gone, read_records, set_service_port, start_cli


def parse_document(stdout: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stdout)  # all of stdout: nothing else may be printed there
    jsonschema.validate(document, read_schema())
    return document


def without_the_service(project: Project) -> None:
    config = project.config_file
    config.write_text(
        config.read_text().replace("DAG: prepare >> left,right >> serve", "DAG: prepare >> left,right")
    )


def test_run_local_json_prints_only_the_document_on_stdout(project: Project) -> None:
    without_the_service(project)

    code, out, err = start_cli(
        project, "run", "--local", "--reuse-env", "--format", "json", split=True
    ).finish()

    assert code == 0, err
    document = parse_document(out)
    assert (document["command"], document["status"], document["exit_code"]) == ("run", "succeeded", 0)
    assert document["target"] == "local" and document["timed_out"] is False and document["namespace"] == ""
    assert [(s["stage"], s["status"]) for s in document["stages"]] == [
        ("prepare", "succeeded"),
        ("left", "succeeded"),
        ("right", "succeeded"),
    ]
    assert "prepare | prepare done" in err and "== step 2: left, right" in err  # the run's lines: stderr


def test_run_local_json_after_ctrl_c_is_still_one_document(project: Project) -> None:
    set_service_port(project, free_port())
    cli = start_cli(project, "run", "--local", "--reuse-env", "--format", "json", split=True)
    assert cli.process.stderr is not None
    for line in cli.process.stderr:
        if line.startswith("serving: "):
            break

    cli.interrupt()
    code, out, _ = cli.finish()

    document = parse_document(out)
    assert code == 0 and document["status"] == "succeeded" and document["message"] == "services stopped"
    assert document["service_urls"]["serve"].startswith("http://127.0.0.1:")


def test_run_local_past_its_timeout_stops_the_running_stage_and_fails_saying_so(project: Project) -> None:
    set_service_port(project, free_port())
    config = project.config_file  # left hangs: only the time limit (long enough for left to start) ends it
    config.write_text(
        config.read_text().replace('work.py\n    args: ["left", "0.5"]', 'hang.py\n    args: ["left"]')
    )

    code, out, err = start_cli(
        project, "run", "--local", "--reuse-env", "--timeout", "6s", "--format", "json", split=True
    ).finish()

    assert code == 1, err
    document = parse_document(out)
    assert (document["status"], document["timed_out"]) == ("failed", True)
    assert document["message"].startswith("--timeout 6s reached; cancelled")
    stages = {s["stage"]: s["status"] for s in document["stages"]}
    assert stages["left"] == "cancelled" and stages["serve"] == "cancelled"
    (left,) = read_records(project.out_dir, "left")
    assert is_gone(left["pid"]) and is_gone(left["child_pid"])
    (result_line,) = [line for line in err.splitlines() if line.startswith("local-test: ")]
    assert result_line.startswith("local-test: failed in ") and "on this machine" in result_line
