"""The one JSON document every ``--format json`` command prints, described by ``result.schema.json``.

``{"command", "status", "exit_code", "namespace", "stages", "problems", ...}``: a stage entry is
``StageResult.to_json()``, exactly an entry of the action's ``stages`` output; a problem entry is
``ConfigProblem.to_json``. Each command adds only the fields that mean something for it (``deleted``
for delete, ``steps`` for plan...). Pure functions: the CLI prints the document, alone, on stdout.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

from bodywork_action.diffing import PipelineDiff
from bodywork_action.errors import EXIT_INVALID_INPUT, EXIT_OK, ConfigProblem, Severity
from bodywork_action.model import Pipeline, StageKind, StageName
from bodywork_action.results import (
    LOCAL_TARGET,
    DeleteResult,
    DeploymentResult,
    PipelineState,
    StageResult,
    StageState,
    StageStatus,
)
from bodywork_action.selection import EVERY_STAGE, StageSelection

SCHEMA_FILE = "result.schema.json"
Document = dict[str, Any]


def read_schema() -> dict[str, Any]:
    """The JSON Schema the documents follow, as shipped in the package."""
    schema: dict[str, Any] = json.loads(
        resources.files("bodywork_action").joinpath(SCHEMA_FILE).read_text(encoding="utf-8")
    )
    return schema


def format_document(document: Mapping[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False)


def _document(
    command: str,
    status: str,
    *,
    exit_code: int,
    namespace: str,
    stages: Sequence[StageResult] = (),
    problems: Sequence[ConfigProblem] = (),
    **fields: Any,
) -> Document:
    return {
        "command": command,
        "status": status,
        "exit_code": exit_code,
        "namespace": namespace,
        "stages": [stage.to_json() for stage in stages],
        "problems": [problem.to_json() for problem in problems],
        **fields,
    }


def deployment_document(command: str, result: DeploymentResult, *, timed_out: bool = False) -> Document:
    """``deploy`` and ``run --local``: what every stage did, as the action's outputs say it (a local run
    has no namespace: its stages ran as processes here)."""
    return _document(
        command,
        result.status.value,
        exit_code=result.exit_code,
        namespace="" if result.target == LOCAL_TARGET else result.namespace,
        stages=result.stages,
        pipeline=result.pipeline,
        commit=result.commit,
        target=result.target,
        dry_run=result.dry_run,
        timed_out=timed_out,
        duration_seconds=round(result.duration_seconds, 3),
        message=result.message,
        service_urls=result.service_urls,
    )


def plan_document(pipeline: Pipeline, *, namespace: str, selection: StageSelection = EVERY_STAGE) -> Document:
    """``plan``: every stage that would be deployed, still pending, and the steps they run in; a stage a
    partial run leaves out is skipped, with the selection's reason (as deploy reports it)."""
    stages = [
        StageResult(stage=stage.name, kind=stage.kind)
        if selection.includes(stage.name)
        else selection.skipped_result(stage)
        for stage in pipeline.dag_stages
    ]
    if pipeline.failure_stage is not None:
        stages.append(
            StageResult(
                stage=pipeline.failure_stage.name, kind=pipeline.failure_stage.kind, run_on_failure=True
            )
        )
    return _document(
        "plan",
        "planned",
        exit_code=EXIT_OK,
        namespace=namespace or pipeline.target_namespace,
        stages=stages,
        pipeline=pipeline.name,
        steps=[list(step) for step in pipeline.steps],
    )


def diff_document(diff: PipelineDiff, *, exit_code: int) -> Document:
    """``diff``: what a deploy would change, every object with its state (``changed`` when any would);
    a Secret by its keys only, as everywhere else."""
    return _document(
        "diff",
        "changed" if diff.changes else "unchanged",
        exit_code=exit_code,
        namespace=diff.namespace,
        pipeline=diff.pipeline,
        changes=diff.changes,
        diff=[obj.to_json() for obj in diff.objects],
        old_jobs=list(diff.old_jobs),
        notes=list(diff.notes),
    )


def _stage_of_state(state: StageState) -> StageResult:
    return StageResult(
        stage=StageName(state.stage),
        kind=StageKind(state.kind),
        status=StageStatus(state.status),
        attempts=state.attempts,
        reason=state.reason,
        message=state.message,
        url=state.url,
        ingress_path=state.ingress_path,
    )


def status_document(state: PipelineState) -> Document:
    """``status``: each deployed stage's verdict; which object it was read from is in ``objects``."""
    return _document(
        "status",
        "deployed" if state.stages else "not-deployed",
        exit_code=EXIT_OK,
        namespace=state.namespace,
        stages=[_stage_of_state(s) for s in state.stages],
        pipeline=state.pipeline,
        namespace_exists=state.namespace_exists,
        namespace_created_by_tool=state.namespace_created_by_tool,
        objects=[{"stage": s.stage, "object": s.object, "commit": s.commit} for s in state.stages],
    )


def delete_document(outcome: DeleteResult) -> Document:
    return _document(
        "delete",
        "deleted",
        exit_code=EXIT_OK,
        namespace=outcome.namespace,
        pipeline=outcome.pipeline,
        dry_run=outcome.dry_run,
        deleted=list(outcome.deleted),
        namespace_deleted=outcome.namespace_deleted,
        message=outcome.message,
    )


def validate_document(file: str, problems: Sequence[ConfigProblem], *, pipeline: Pipeline | None) -> Document:
    """``validate``: every problem with its line; ``valid`` and the counts as before this schema."""
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    valid = pipeline is not None
    return _document(
        "validate",
        "valid" if valid else "invalid",
        exit_code=EXIT_OK if valid else EXIT_INVALID_INPUT,
        namespace=pipeline.target_namespace if pipeline is not None else "",
        problems=problems,
        pipeline=pipeline.name if pipeline is not None else "",
        file=file,
        valid=valid,
        error_count=errors,
        warning_count=len(problems) - errors,
    )


def error_document(
    command: str,
    *,
    status: str,
    exit_code: int,
    error: str,
    problems: Sequence[ConfigProblem] = (),
    file: str = "",
) -> Document:
    """A command that ended in an error: ``invalid`` (bodywork.yaml), ``cancelled`` or ``error``."""
    fields: dict[str, Any] = {"error": error}
    if file:
        fields["file"] = file
    return _document(command, status, exit_code=exit_code, namespace="", problems=problems, **fields)
