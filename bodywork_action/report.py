"""Terminal formats: the plan table, results, deletions and failure details (validation problems:
``errors.format_problems_text``).

Pure functions returning strings; the CLI decides where they go.
"""

from __future__ import annotations

from collections.abc import Sequence

from bodywork_action.executor import Progress, ProgressKind
from bodywork_action.model import Pipeline, Stage
from bodywork_action.overrides import format_stage_resources
from bodywork_action.results import DeleteResult, DeploymentResult, PipelineState, StageResult
from bodywork_action.rollback import format_atomic_rollback
from bodywork_action.selection import EVERY_STAGE, StageSelection

# --- plan -------------------------------------------------------------------------------------------


def _stage_settings(stage: Stage) -> str:
    if stage.batch is not None:
        limit = stage.batch.max_completion_time_seconds
        return f"retries {stage.batch.retries}, limit {f'{limit}s' if limit else 'none'}"
    assert stage.service is not None
    service = stage.service
    ingress = ", ingress" if service.ingress else ""
    return f"{service.replicas} replica{'s' if service.replicas != 1 else ''}, port {service.port}{ingress}"


def _table(rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def format_plan(pipeline: Pipeline, *, namespace: str = "", selection: StageSelection = EVERY_STAGE) -> str:
    """The steps and their stages as a readable table; a partial run's skipped stages, and why, below."""
    lines = [
        f"pipeline   {pipeline.name}",
        f"namespace  {namespace or pipeline.target_namespace}",
        f"image      {pipeline.docker_image}",
        f"DAG        {pipeline.dag_text}",
        "",
    ]
    rows: list[list[str]] = [["STEP", "STAGE", "TYPE", "MODULE", "SETTINGS", "RESOURCES", "SECRETS"]]

    def row(step: str, stage: Stage) -> list[str]:
        secrets = sorted({s.secret for s in stage.secrets})
        return [
            step,
            stage.name,
            stage.kind.value,
            stage.executable_module_path,
            _stage_settings(stage),
            format_stage_resources(stage),
            ", ".join(secrets) or "-",
        ]

    for number, step in enumerate(pipeline.step_stages(), start=1):
        rows.extend(row(str(number), stage) for stage in step)
    if pipeline.failure_stage is not None:
        rows.append(row("on failure", pipeline.failure_stage))
    lines.extend(_table(rows))
    outside = sorted(
        name
        for name in pipeline.stages
        if name not in {s.name for s in pipeline.dag_stages} and name != pipeline.run_on_failure
    )
    if outside:
        lines.append("")
        lines.append(f"not in the DAG (not deployed): {', '.join(outside)}")
    if selection.partial:
        by_reason: dict[str, list[str]] = {}
        for name, reason in selection.skipped.items():
            by_reason.setdefault(reason, []).append(name)
        lines.append("")
        lines.extend(f"skipped, {reason}: {', '.join(names)}" for reason, names in by_reason.items())
    return "\n".join(lines)


# --- results ----------------------------------------------------------------------------------------


def _duration(result: StageResult) -> str:
    seconds = result.duration_seconds
    return "-" if seconds is None else f"{seconds:.1f}s"


def format_result_table(result: DeploymentResult) -> str:
    rows: list[list[str]] = [["STAGE", "TYPE", "STATUS", "ATTEMPTS", "DURATION", "URL / REASON"]]
    for stage in result.stages:
        name = f"{stage.stage} (on failure)" if stage.run_on_failure else stage.stage
        detail = stage.url or stage.reason
        if stage.rolled_back:
            detail += " (rolled back)"
        rows.append(
            [name, stage.kind.value, stage.status.value, str(stage.attempts or "-"), _duration(stage), detail]
        )
    lines = _table(rows)
    lines.append("")
    lines.extend(format_result_lines(result))
    return "\n".join(lines)


def format_result_lines(result: DeploymentResult) -> list[str]:
    """The outcome in one line, then what else the run did or left behind (pruned, dry run, ...)."""
    return [result.one_line(), *([result.message] if result.message else []), *format_atomic_rollback(result)]


def format_failure_details(result: DeploymentResult) -> str:
    """For each failed stage: reason, events, last log lines (already redacted by the caller's backend)."""
    blocks: list[str] = []
    for stage in result.failed_stages:
        lines = [f"--- {stage.stage}: {stage.reason or 'failed'}"]
        if stage.message:
            lines.append(stage.message)
        for event in stage.events:
            count = f" (x{event.count})" if event.count > 1 else ""
            lines.append(f"  event {event.type} {event.reason} {event.object}: {event.message}{count}")
        for source, log_lines in stage.logs.items():
            lines.append(f"  last {len(log_lines)} log lines of {source}:")
            lines.extend(f"    {line}" for line in log_lines)
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


# --- progress ---------------------------------------------------------------------------------------


def format_stage_line(result: StageResult) -> str:
    duration = result.duration_seconds
    took = f" in {duration:.1f}s" if duration is not None else ""
    tries = f" after {result.attempts} attempts" if result.attempts > 1 else ""
    line = f"-- {result.stage}: {result.status.value}{took}{tries}"
    if result.reason and result.status.value != "succeeded":
        line += f" ({result.reason})"
    if result.url:
        line += f" -> {result.url}"
    if result.rolled_back:
        line += " [rolled back to the previous revision]"
    return line


def format_progress(progress: Progress) -> str | None:
    """One terminal line per interesting executor event, or None."""
    if progress.kind is ProgressKind.STEP_STARTED:
        return f"== step {progress.step}: {', '.join(progress.stages)}"
    if progress.kind is ProgressKind.FAILURE_STAGE_STARTED:
        return f"== run_on_failure: {progress.stages[0]}"
    if progress.kind is ProgressKind.STAGE_FINISHED and progress.result is not None:
        return format_stage_line(progress.result)
    if progress.kind in (ProgressKind.WAITING, ProgressKind.WARNING):
        return f"== {progress.detail}"
    if progress.kind is ProgressKind.ROLLING_BACK:
        return f"== atomic: rolling back {', '.join(progress.stages)} to the revision before this deploy"
    if progress.kind is ProgressKind.ROLLED_BACK and progress.detail == "atomic" and progress.result:
        done = progress.result
        if done.rollback_error:
            return f"-- {done.stage}: ROLLBACK FAILED: {done.rollback_error}"
        return (
            f"-- {done.stage}: {'removed (new in this deploy)' if done.rollback_removed else 'rolled back'}"
        )
    return None


def format_pipeline_state(state: PipelineState) -> str:
    """A plain table of what is deployed, for the terminal."""
    if not state.namespace_exists:
        return f"{state.pipeline}: namespace {state.namespace} does not exist; nothing is deployed"
    if not state.stages:
        return f"{state.pipeline}: nothing deployed in namespace {state.namespace}"
    rows = [("STAGE", "TYPE", "STATUS", "OBJECT", "COMMIT", "DETAIL")]
    for s in state.stages:
        detail = s.url or s.reason or s.message
        rows.append((s.stage, s.kind, s.status, s.object, s.commit[:7], detail))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])) + "  " + r[-1] for r in rows]
    return f"{state.pipeline} in namespace {state.namespace}\n" + "\n".join(line.rstrip() for line in lines)


def format_delete_lines(outcome: DeleteResult) -> list[str]:
    """What ``delete`` removed (or would remove, in a dry run), one line each."""
    prefix = "would delete" if outcome.dry_run else "deleted"
    lines = [f"{prefix} {name}" for name in outcome.deleted]
    if outcome.namespace_deleted:
        lines.append(f"{prefix} namespace {outcome.namespace}")
    if outcome.message:
        lines.append(outcome.message)
    if not outcome.deleted and not outcome.namespace_deleted:
        lines.append(f"nothing of {outcome.pipeline} to delete in namespace {outcome.namespace}")
    return lines
