"""``--only`` and ``--from-step`` through ``main(argv)``: bad selections exit 2 with one line before any
cluster is contacted; ``plan`` shows what a partial run would touch."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from bodywork_action.cli import main

PROJECT = (
    Path(__file__).parent / "data" / "bodywork_project" / "bodywork.yaml"
)  # stage_1 >> stage_2,stage_3 >> stage_4
CONTEXT = ("--repo", "https://github.com/o/r", "--commit", "0" * 40)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err, environ={})
    return code, out.getvalue(), err.getvalue()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--only", "stage_9"), "error: --only: 'stage_9' is not a stage of the DAG"),
        (("--only", "stage-2"), "did you mean 'stage_2'?"),
        (("--only", ","), "error: --only names no stage"),
        (("--only", "stage_5"), "error: --only: stage 'stage_5' is not in the DAG"),
        (
            ("--from-step", "4"),
            "error: --from-step 4: the DAG 'stage_1 >> stage_2,stage_3 >> stage_4' has 3 steps",
        ),
        (("--from-step", "0"), "error: --from-step 0: "),
    ],
)
def test_a_bad_selection_is_one_line_and_exit_2_before_any_cluster(
    flags: tuple[str, ...], message: str
) -> None:
    # No kubeconfig exists here: the selection is refused before anything would connect.
    code, out, err = run("deploy", "-f", str(PROJECT), "--kubeconfig", "/nonexistent", *CONTEXT, *flags)

    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in out + err


@pytest.mark.parametrize("command", ["deploy", "plan", "diff"])
def test_both_flags_or_a_step_that_is_no_number_are_usage_errors(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(command, "-f", str(PROJECT), "--only", "stage_1", "--from-step", "2")[0] == 2
    assert "argument --from-step: not allowed with argument --only" in capsys.readouterr().err
    assert run(command, "-f", str(PROJECT), "--from-step", "two")[0] == 2
    assert "must be a step number (1 is the first), found 'two'" in capsys.readouterr().err


def test_plan_table_shows_what_a_partial_run_skips() -> None:
    code, out, _ = run("plan", "-f", str(PROJECT), "--from-step", "2")
    assert code == 0
    assert out.rstrip().endswith("skipped, before --from-step 2: stage_1")


def test_plan_yaml_holds_only_the_selected_stages_objects() -> None:
    code, out, _ = run("plan", "-f", str(PROJECT), "-o", "yaml", *CONTEXT, "--only", "stage_3,stage_4")
    assert code == 0
    objects = [o for o in yaml.safe_load_all(out) if o]
    stages = {
        o["metadata"]["labels"].get("app.kubernetes.io/name") for o in objects if o["kind"] != "Namespace"
    }
    assert stages == {"stage-3", "stage-4"}


def test_plan_json_shows_the_stages_a_partial_run_leaves_out_as_skipped_with_the_reason() -> None:
    code, out, _ = run("plan", "-f", str(PROJECT), "--only", "stage_3", "--format", "json")
    assert code == 0
    stages = json.loads(out)["stages"]
    assert [(s["stage"], s["status"], s["reason"]) for s in stages] == [
        ("stage_1", "skipped", "not selected (--only)"),
        ("stage_2", "skipped", "not selected (--only)"),
        ("stage_3", "pending", ""),
        ("stage_4", "skipped", "not selected (--only)"),
        ("on_fail_stage", "pending", ""),  # run_on_failure: it still runs if stage_3 fails
    ]


def test_plan_json_of_a_bad_selection_is_an_error_document() -> None:
    code, out, _ = run("plan", "-f", str(PROJECT), "--from-step", "4", "--format", "json")
    document = json.loads(out)
    assert (code, document["status"], document["exit_code"]) == (2, "error", 2)
    assert document["error"].startswith("--from-step 4: the DAG")
