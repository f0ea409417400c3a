"""``--format json``: one document of result.schema.json on stdout, for results and for errors alike.

The commands that need a cluster are checked against the fake API server in tests/deploy/test_cli_json.py,
``run --local`` in tests/local/test_local_json.py; here: the schema itself, validate, plan, usage errors.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bodywork_action.cli import main
from bodywork_action.errors import ConfigProblem
from bodywork_action.model import StageKind, StageName
from bodywork_action.options import describe_duration, parse_duration
from bodywork_action.result_document import read_schema
from bodywork_action.results import StageResult

PROJECT = Path(__file__).parent / "data" / "bodywork_project" / "bodywork.yaml"
BROKEN = PROJECT.read_text().replace("retries: 4", "retries: four")


def run_json(*argv: str) -> tuple[int, dict[str, Any], str]:
    """Exit code, stdout parsed as one JSON document (checked against the schema), stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--format", "json"], out=out, err=err, environ={})
    document = json.loads(out.getvalue())  # the whole of stdout: nothing else may be printed there
    jsonschema.validate(document, read_schema())
    assert document["exit_code"] == code
    return code, document, err.getvalue()


def test_the_schema_is_a_valid_json_schema_shipped_in_the_package() -> None:
    schema = read_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert {"command", "status", "exit_code", "namespace", "stages", "problems"} <= set(schema["required"])


def test_a_stage_entry_is_exactly_the_actions_stages_output_entry() -> None:
    """The schema's stage is StageResult.to_json(), the function the action's ``stages`` output uses."""
    stage = read_schema()["$defs"]["stage"]
    keys = set(StageResult(stage=StageName("s"), kind=StageKind.BATCH).to_json())
    assert set(stage["properties"]) == keys and set(stage["required"]) == keys
    assert stage["additionalProperties"] is False
    problem = read_schema()["$defs"]["problem"]
    assert set(problem["properties"]) == set(ConfigProblem("f", 1, 1, "p", "m").to_json())


def test_validate_json_of_a_valid_file() -> None:
    code, document, _ = run_json("validate", "-f", str(PROJECT))
    assert code == 0
    assert (document["command"], document["status"], document["valid"]) == ("validate", "valid", True)
    assert document["namespace"] == "bodywork-test-project" and document["stages"] == []


def test_validate_json_of_an_invalid_file_lists_the_problems_with_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "bodywork.yaml"
    path.write_text(BROKEN)
    code, document, _ = run_json("validate", "-f", str(path))
    assert code == 2 and document["status"] == "invalid" and document["error_count"] == 1
    (problem,) = document["problems"]
    assert problem["path"] == "stages.stage_1.batch.retries" and problem["line"] > 0


def test_plan_json_lists_every_stage_pending_and_the_steps() -> None:
    code, document, err = run_json("plan", "-f", str(PROJECT), "--namespace", "elsewhere")
    assert code == 0 and err == ""
    assert (document["command"], document["status"], document["namespace"]) == (
        "plan",
        "planned",
        "elsewhere",
    )
    assert [s["stage"] for s in document["stages"]] == [
        *[name for step in document["steps"] for name in step],
        "on_fail_stage",  # run_on_failure, after the DAG
    ]
    assert {s["status"] for s in document["stages"]} == {"pending"}
    assert document["stages"][-1]["run_on_failure"] is True


def test_an_invalid_file_is_an_invalid_document_with_its_problems_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "bodywork.yaml"
    path.write_text(BROKEN)
    code, document, err = run_json("plan", "-f", str(path))
    assert code == 2
    assert (document["status"], document["error"]) == ("invalid", f"1 error in {path}")
    assert [p["path"] for p in document["problems"]] == ["stages.stage_1.batch.retries"]
    assert "stages.stage_1.batch.retries" in err  # the human form still goes to stderr


def test_an_input_error_is_an_error_document_with_its_exit_code(tmp_path: Path) -> None:
    code, document, err = run_json("deploy", "-f", str(PROJECT), "--kubeconfig", str(tmp_path / "none"))
    assert code == 2
    assert document["command"] == "deploy" and document["status"] == "error"
    assert document["error"] and document["error"] in err


@pytest.mark.parametrize("value", ["0", "-5m", "15x", "", "1.5d", "m"])
def test_a_bad_timeout_is_one_clear_error_also_in_json(value: str) -> None:
    code, document, err = run_json("deploy", "-f", str(PROJECT), f"--timeout={value}")
    assert code == 2 and document["status"] == "error"
    expected = "give a duration of more than zero, in seconds (90) or with a unit: 90s, 15m, 1h"
    assert document["error"] == f"argument --timeout: {expected}"
    assert err.strip().splitlines()[-1].endswith(f"error: argument --timeout: {expected}")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "seconds", "shown"),
    [("90s", 90, "90s"), ("15m", 900, "15m"), ("1h", 3600, "1h"), ("90", 90, "90s"), ("2.5m", 150, "150s")],
)
def test_timeout_durations(text: str, seconds: float, shown: str) -> None:
    assert parse_duration(text, option="--timeout") == seconds
    assert describe_duration(seconds) == shown


def test_without_json_a_usage_error_is_left_to_argparse(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert main(["deploy", "--timeout", "soon"], out=out, environ={}) == 2
    assert out.getvalue() == "" and "argument --timeout" in capsys.readouterr().err
