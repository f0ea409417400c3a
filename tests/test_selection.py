"""Partial runs (``--only``, ``--from-step``) and stage identity across a kind change, as pure functions."""

from __future__ import annotations

from typing import Any

import pytest

from bodywork_action import render
from bodywork_action.errors import EXIT_INVALID_INPUT, InputError
from bodywork_action.model import Stage, StageKind, StageName
from bodywork_action.plan import render_plan
from bodywork_action.reconcile import build_prune_plan
from bodywork_action.redact import Redactor
from bodywork_action.report import format_plan, format_result_table
from bodywork_action.results import DeploymentResult, DeploymentStatus, StageResult, StageState, StageStatus
from bodywork_action.selection import (
    ACTION_NAMES,
    EVERY_STAGE,
    parse_only,
    select_stage_objects,
    select_stages,
)
from bodywork_action.stage_identity import build_stage_kinds, is_of_former_kind, select_current_states
from bodywork_action.summary import render_stage_table
from testing.builders import batch, context, four_stage_pipeline, pipeline, service

DIAMOND = four_stage_pipeline()  # a >> b,c >> d


def refused(**request: object) -> str:
    with pytest.raises(InputError) as caught:
        select_stages(DIAMOND, **request)  # type: ignore[arg-type]
    assert caught.value.exit_code == EXIT_INVALID_INPUT
    return str(caught.value)


# --- choosing ---------------------------------------------------------------------------------------


def test_nothing_asked_selects_the_whole_dag() -> None:
    assert select_stages(DIAMOND) is EVERY_STAGE
    assert not EVERY_STAGE.partial


def test_from_step_skips_the_earlier_steps_saying_which_step_the_run_started_from() -> None:
    selection = select_stages(DIAMOND, from_step=2)

    assert dict(selection.skipped) == {"a": "before --from-step 2"}
    assert [s for s in ("a", "b", "c", "d") if selection.includes(s)] == ["b", "c", "d"]
    assert selection.description == "--from-step 2"


def test_from_step_one_is_the_whole_dag() -> None:
    assert not select_stages(DIAMOND, from_step=1).partial


def test_only_skips_every_other_stage_and_keeps_the_dags_order() -> None:
    selection = select_stages(DIAMOND, only=("d", "b"))

    assert dict(selection.skipped) == {"a": "not selected (--only)", "c": "not selected (--only)"}
    assert selection.description == "--only b, d"


def test_only_values_are_comma_separated_and_repeatable() -> None:
    assert parse_only(["b, c", "d", " ,"]) == ("b", "c", "d")


def test_the_action_names_its_inputs_in_reasons_and_messages() -> None:
    selection = select_stages(DIAMOND, only=("a",), names=ACTION_NAMES)
    assert selection.skipped["b"] == "not selected (stages)"
    with pytest.raises(InputError, match=r"^from-step 9: "):
        select_stages(DIAMOND, from_step=9, names=ACTION_NAMES)


def test_unknown_stage_is_refused_with_the_closest_name() -> None:
    assert refused(only=("b", "dd")) == (
        "--only: 'dd' is not a stage of the DAG 'a >> b,c >> d'; did you mean 'd'?"
    )


def test_stage_outside_the_dag_and_the_failure_stage_are_refused_saying_why() -> None:
    p = pipeline("a >> b", batch("a"), batch("b"), batch("spare"), batch("undo"), run_on_failure="undo")
    with pytest.raises(InputError, match="'spare' is not in the DAG 'a >> b': it is never deployed"):
        select_stages(p, only=("spare",))
    with pytest.raises(InputError, match="'undo' is the pipeline's run_on_failure stage"):
        select_stages(p, only=("undo",))


@pytest.mark.parametrize("step", [0, 4, -1])
def test_step_out_of_range_is_refused_naming_the_steps_there_are(step: int) -> None:
    assert refused(from_step=step) == f"--from-step {step}: the DAG 'a >> b,c >> d' has 3 steps (1 to 3)"


def test_both_flags_and_an_empty_selection_are_refused() -> None:
    assert refused(only=("a",), from_step=2) == "--only and --from-step can't be combined: choose one"
    assert refused(only=()).startswith("--only names no stage")


# --- the plan, the objects a partial run may prune --------------------------------------------------


def test_the_plan_applies_only_the_selected_stages_objects_but_renders_all() -> None:
    plan = render_plan(DIAMOND, context(), selection=select_stages(DIAMOND, only=("c",)))

    assert [s.stage.name for s in plan.selected_stages()] == ["c"]
    assert [(o["kind"], o["metadata"]["name"]) for o in plan.selected_objects()] == [
        ("Namespace", "demo"),
        ("Deployment", "c"),
        ("Service", "c"),
    ]
    assert len(plan.objects()) > len(plan.selected_objects())


def test_a_partial_run_prunes_nothing_of_the_stages_it_left_out() -> None:
    before = render_plan(DIAMOND, context("run-1")).objects()
    # d left the DAG and c changed kind: a whole run would remove both; a run of only b touches neither.
    changed = pipeline("a >> b,c", batch("a"), batch("b"), batch("c"))
    plan = render_plan(changed, context("run-2"), selection=select_stages(changed, only=("b",)))

    candidates = select_stage_objects(before, changed, plan.selection)

    assert {render.LABEL_NAME in o["metadata"]["labels"] for o in candidates} == {True}
    assert {o["metadata"]["labels"][render.LABEL_NAME] for o in candidates} == {"b"}
    assert build_prune_plan(plan.objects(), candidates, pipeline_label="demo") == []
    assert ("Deployment", "d") in build_prune_plan(plan.objects(), before, pipeline_label="demo")


# --- a stage that changed kind ----------------------------------------------------------------------


def _objects(x: Stage, *, deployment_id: str) -> list[dict[str, Any]]:
    return render_plan(pipeline("a >> x", batch("a"), x), context(deployment_id)).objects()


def test_a_stage_now_a_service_loses_every_job_of_its_batch_days() -> None:
    old_jobs = [o for o in _objects(batch("x"), deployment_id="run-1") if o["kind"] == "Job"]
    desired = _objects(service("x"), deployment_id="run-2")

    prune = build_prune_plan(desired, old_jobs, pipeline_label="demo")

    x_job = next(o["metadata"]["name"] for o in old_jobs if o["metadata"]["name"].startswith("x-"))
    assert prune == [("Job", x_job)], "a's Job stays as history; x's goes, whatever the history length"
    assert build_stage_kinds(desired) == {"a": "batch", "x": "service"}


def test_a_stage_now_batch_loses_its_deployment_service_and_ingress() -> None:
    old = _objects(service("x", ingress=True), deployment_id="run-1")
    desired = _objects(batch("x"), deployment_id="run-2")
    kinds = build_stage_kinds(desired)

    assert sorted(o["kind"] for o in old if is_of_former_kind(o, kinds)) == [
        "Deployment",
        "Ingress",
        "Service",
    ]
    prune = build_prune_plan(desired, old, pipeline_label="demo")
    assert sorted(prune) == [("Deployment", "x"), ("Ingress", "x"), ("Service", "x")]


def _state(stage: str, kind: str, obj: str) -> StageState:
    return StageState(stage=stage, kind=kind, status="succeeded", object=obj)


def test_status_shows_one_row_per_stage_of_its_current_kind() -> None:
    p = pipeline("x >> y", service("x"), batch("y"))
    states = [
        _state("x", "service", "Deployment/x"),
        _state("x", "batch", "Job/x-run-1"),
        _state("y", "batch", "Job/y-run-2"),
        _state("gone", "service", "Deployment/gone"),
        _state("gone", "batch", "Job/gone-run-1"),
    ]

    shown = select_current_states(states, p)

    assert [s.object for s in shown] == ["Deployment/x", "Job/y-run-2", "Deployment/gone", "Job/gone-run-1"]


def test_status_keeps_the_old_kinds_row_while_it_is_the_only_one() -> None:
    p = pipeline("x", service("x"))
    assert select_current_states([_state("x", "batch", "Job/x-1")], p) == (_state("x", "batch", "Job/x-1"),)


# --- how a skipped stage is shown -------------------------------------------------------------------


def _partial_result() -> DeploymentResult:
    return DeploymentResult(
        pipeline="demo",
        namespace="demo",
        steps=DIAMOND.steps,
        stages=(
            StageResult(StageName("a"), StageKind.BATCH, StageStatus.SKIPPED, reason="before --from-step 2"),
            StageResult(
                StageName("b"),
                StageKind.BATCH,
                StageStatus.SUCCEEDED,
                attempts=1,
                started_at=1,
                finished_at=2,
            ),
        ),
        status=DeploymentStatus.SUCCEEDED,
        started_at=0.0,
        finished_at=3.0,
        selection="--from-step 2",
    )


def test_the_result_table_summary_and_one_line_say_why_a_stage_was_skipped() -> None:
    result = _partial_result()

    rows = [line.split(maxsplit=5) for line in format_result_table(result).splitlines()]
    assert ["a", "batch", "skipped", "-", "-", "before --from-step 2"] in rows
    assert "partial run (--from-step 2): the other stages were left as they were" in result.one_line()
    assert "⏭️ skipped (before --from-step 2)" in render_stage_table(result, redactor=Redactor())
    assert result.to_json()["stages"][0]["reason"] == "before --from-step 2"


def test_the_plan_table_lists_the_skipped_stages_by_reason() -> None:
    text = format_plan(DIAMOND, selection=select_stages(DIAMOND, only=("b", "c")))
    assert text.endswith("skipped, not selected (--only): a, d")
