"""The job summary: a ``DeploymentResult`` (or a list of config problems) → GitHub-flavoured Markdown.

Pure rendering. Every piece of text that came from outside (stage names, messages, events, logs) goes
through the ``Redactor`` *before* it is escaped — escaping first could split a secret so that it no
longer matches. The document is kept under ``SUMMARY_MAX_BYTES``: log tails are trimmed first, then
events, and the summary says what was trimmed.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass

from bodywork_action.errors import ConfigProblem, Severity
from bodywork_action.model import Pipeline
from bodywork_action.redact import Redactor
from bodywork_action.results import DeploymentResult, DeploymentStatus, EventRecord, StageResult, StageStatus
from bodywork_action.rollback import format_atomic_rollback

# GitHub refuses step summaries over 1 MiB; stay a little under so a line or two from elsewhere still fits.
SUMMARY_MAX_BYTES = 1024 * 1024 - 4 * 1024
# Log lines shown per container of a failed stage before any trimming.
LOG_TAIL_LINES = 50
# Events shown per failed stage before any trimming.
MAX_EVENTS_PER_STAGE = 20
# A single log line longer than this is cut (a minified JSON blob would otherwise eat the budget).
LOG_LINE_MAX_CHARS = 2000

STATUS_ICONS = {
    StageStatus.SUCCEEDED: "✅",
    StageStatus.FAILED: "❌",
    StageStatus.RUNNING: "⏳",
    StageStatus.PENDING: "⏸️",
    StageStatus.SKIPPED: "⏭️",
    StageStatus.CANCELLED: "🚫",
}
DEPLOYMENT_ICONS = {
    DeploymentStatus.SUCCEEDED: "✅",
    DeploymentStatus.FAILED: "❌",
    DeploymentStatus.CANCELLED: "🚫",
}
# Mermaid classDefs, one per stage status (colours readable in GitHub's light and dark themes).
MERMAID_CLASSES = {
    StageStatus.SUCCEEDED: "fill:#dafbe1,stroke:#1a7f37,color:#1f2328",
    StageStatus.FAILED: "fill:#ffebe9,stroke:#cf222e,color:#1f2328",
    StageStatus.RUNNING: "fill:#fff8c5,stroke:#9a6700,color:#1f2328",
    StageStatus.PENDING: "fill:#f6f8fa,stroke:#8c959f,color:#1f2328",
    StageStatus.SKIPPED: "fill:#f6f8fa,stroke:#8c959f,color:#1f2328,stroke-dasharray:4 3",
    StageStatus.CANCELLED: "fill:#f6f8fa,stroke:#57606a,color:#1f2328",
}

_MERMAID_SAFE = re.compile(r"[A-Za-z0-9 _\-.]")
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


@dataclass(frozen=True)
class SummaryLinks:
    """Where the deployment came from, for links in the summary; any may be empty."""

    repository: str = ""  # owner/name, shown
    repository_url: str = ""
    commit_url: str = ""
    run_url: str = ""


# --------------------------------------------------------------------------------------------- helpers


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def escape_markdown(text: str) -> str:
    """Text safe inside a Markdown paragraph or table cell: specials backslash-escaped, no line breaks."""
    one_line = " ".join(text.split())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line)


def format_code_span(text: str) -> str:
    """An inline code span that survives backticks and pipes in ``text`` (for table cells too)."""
    one_line = " ".join(text.split()).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", one_line)), default=0)
    fence = "`" * (longest + 1)
    padding = " " if one_line.startswith("`") or one_line.endswith("`") else ""
    return f"{fence}{padding}{one_line}{padding}{fence}"


def format_code_block(text: str, *, language: str = "text") -> str:
    """A fenced block whose fence is longer than any backtick run inside, so the content can't close it."""
    longest = max((len(run) for run in re.findall(r"`{3,}", text)), default=0)
    fence = "`" * max(3, longest + 1)
    body = text if text.endswith("\n") or not text else text + "\n"
    return f"{fence}{language}\n{body}{fence}"


def escape_mermaid_label(text: str) -> str:
    """A Mermaid node label for use inside ``["…"]``: anything unusual becomes an entity code."""
    return "".join(char if _MERMAID_SAFE.match(char) else f"#{ord(char)};" for char in text)


def _link(text: str, url: str) -> str:
    return f"[{text}]({url})" if url else text


def _status_cell(status: StageStatus) -> str:
    return f"{STATUS_ICONS[status]} {status.value}"


# -------------------------------------------------------------------------------------------- sections


def render_mermaid_dag(result: DeploymentResult, *, redactor: Redactor) -> str:
    """A left-to-right flowchart: one column per DAG step, every stage of a step → every stage of the next."""
    node_ids: dict[str, str] = {}
    lines = ["```mermaid", "flowchart LR"]
    by_name = {r.stage: r for r in result.stages if not r.run_on_failure}
    for step_number, step in enumerate(result.steps, start=1):
        for index, name in enumerate(step, start=1):
            node_id = f"s{step_number}_{index}"
            node_ids[name] = node_id
            status = by_name[name].status if name in by_name else StageStatus.PENDING
            label = escape_mermaid_label(redactor.redact(name))
            lines.append(f'  {node_id}["{label}"]:::{status.value}')
    for earlier, later in zip(result.steps, result.steps[1:], strict=False):
        lines.extend(f"  {node_ids[a]} --> {node_ids[b]}" for a in earlier for b in later)
    failure_results = [r for r in result.stages if r.run_on_failure]
    for failure in failure_results:
        label = escape_mermaid_label("on failure: " + redactor.redact(failure.stage))
        lines.append(f'  f1["{label}"]:::{failure.status.value}')
        failed_ids = [node_ids[r.stage] for r in result.failed_stages if r.stage in node_ids]
        lines.extend(f"  {node_id} -.-> f1" for node_id in failed_ids)
    used = {by_name[name].status for step in result.steps for name in step if name in by_name}
    used |= {StageStatus.PENDING for step in result.steps for name in step if name not in by_name}
    used |= {r.status for r in failure_results}
    lines.extend(
        f"  classDef {status.value} {MERMAID_CLASSES[status]}" for status in StageStatus if status in used
    )
    lines.append("```")
    return "\n".join(lines)


def render_stage_table(result: DeploymentResult, *, redactor: Redactor) -> str:
    rows = [
        "| Stage | Type | Status | Attempts | Duration | URL |",
        "|---|---|---|---:|---:|---|",
    ]
    for stage in result.stages:
        name = format_code_span(redactor.redact(stage.stage))
        if stage.run_on_failure:
            name += " (on failure)"
        status = _status_cell(stage.status)
        if stage.rolled_back:
            status += " (rolled back)"
        if stage.status is StageStatus.SKIPPED and stage.reason:  # e.g. not selected (--only)
            status += f" ({escape_markdown(redactor.redact(stage.reason))})"
        url = redactor.redact(stage.url)
        url_cell = format_code_span(url) if url else "–"
        attempts = str(stage.attempts) if stage.attempts else "–"
        rows.append(
            f"| {name} | {stage.kind.value} | {status} | {attempts} | "
            f"{format_duration(stage.duration_seconds)} | {url_cell} |"
        )
    return "\n".join(rows)


def _render_events(events: Sequence[EventRecord], *, limit: int, redactor: Redactor) -> list[str]:
    """Warnings first, in time order; the routine Normal events (Scheduled, Pulled, Started...)
    folded into one line, unless there is no Warning to show."""
    if not events or limit <= 0:
        return []
    warnings = [e for e in events if e.type != "Normal"]
    normal = [e for e in events if e.type == "Normal"]
    shown = warnings or normal
    lines = [
        "**Events**",
        "",
        "| Type | Reason | Object | Count | Message |",
        "|---|---|---|---:|---|",
    ]
    for event in shown[:limit]:
        lines.append(
            f"| {escape_markdown(event.type)} | {escape_markdown(redactor.redact(event.reason))} | "
            f"{escape_markdown(redactor.redact(event.object))} | {event.count} | "
            f"{escape_markdown(redactor.redact(event.message))} |"
        )
    if len(shown) > limit:
        lines.append("")
        lines.append(f"_{len(shown) - limit} more events not shown._")
    if warnings and normal:
        reasons = ", ".join(dict.fromkeys(escape_markdown(redactor.redact(e.reason)) for e in normal))
        lines.append("")
        lines.append(f"_{len(normal)} routine Normal events not shown ({reasons})._")
    lines.append("")
    return lines


def _render_logs(stage: StageResult, *, tail_lines: int, redactor: Redactor) -> list[str]:
    lines: list[str] = []
    if tail_lines <= 0:
        return lines
    for source, log_lines in stage.logs.items():
        if not any(line.strip() for line in log_lines):
            continue  # a container that printed nothing: an empty block says nothing
        shown = [redactor.redact(line) for line in log_lines[-tail_lines:]]
        shown = [
            line if len(line) <= LOG_LINE_MAX_CHARS else line[:LOG_LINE_MAX_CHARS] + " …" for line in shown
        ]
        noun = "line" if len(shown) == 1 else "lines"
        lines.append(f"**Logs** {format_code_span(redactor.redact(source))} (last {len(shown)} {noun})")
        lines.append("")
        lines.append(format_code_block("\n".join(shown)))
        lines.append("")
    return lines


def render_failure_details(
    stage: StageResult, *, tail_lines: int, max_events: int, redactor: Redactor
) -> str:
    """A collapsed ``<details>`` block: the reason, the events and the last log lines of a failed stage."""
    reason = redactor.redact(stage.reason or "failed")
    name = redactor.redact(stage.stage)
    lines = [
        "<details>",
        f"<summary>{STATUS_ICONS[stage.status]} <code>{html.escape(name)}</code>: "
        f"{html.escape(reason)}</summary>",
        "",
    ]
    message = redactor.redact(stage.message)
    lines.append(
        f"**Reason:** {escape_markdown(reason)}" + (f" — {escape_markdown(message)}" if message else "")
    )
    lines.append("")
    lines.extend(_render_events(stage.events, limit=max_events, redactor=redactor))
    lines.extend(_render_logs(stage, tail_lines=tail_lines, redactor=redactor))
    lines.append("</details>")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- documents


def _render_deployment(
    result: DeploymentResult,
    *,
    pipeline: Pipeline | None,
    links: SummaryLinks,
    redactor: Redactor,
    tail_lines: int,
    max_events: int,
    trimmed_note: str,
) -> str:
    icon = DEPLOYMENT_ICONS[result.status]
    pipeline_name = redactor.redact(result.pipeline)
    commit = redactor.redact(result.commit)
    what = "dry run" if result.dry_run else "deployment"
    parts = [f"## {icon} Bodywork {what} of {format_code_span(pipeline_name)} {result.status.value}", ""]
    rows = [f"| Pipeline | {format_code_span(pipeline_name)} |", "|---|---|"]
    if links.repository:
        rows.append(f"| Repository | {_link(escape_markdown(links.repository), links.repository_url)} |")
    if commit:
        rows.append(f"| Commit | {_link(format_code_span(commit[:7]), links.commit_url)} |")
    if pipeline is not None:
        rows.append(f"| Image | {format_code_span(redactor.redact(pipeline.docker_image))} |")
        rows.append(f"| DAG | {format_code_span(redactor.redact(pipeline.dag_text))} |")
    rows.append(f"| Namespace | {format_code_span(redactor.redact(result.namespace))} |")
    if result.target and not result.target.startswith("cluster"):
        # A local run says so; a cluster's API server address is not published in a summary.
        rows.append(f"| Target | {escape_markdown(redactor.redact(result.target))} |")
    rows.append(f"| Result | {icon} {result.status.value} |")
    rows.append(f"| Total time | {format_duration(result.duration_seconds)} |")
    if links.run_url:
        rows.append(f"| Run | {_link('workflow run', links.run_url)} |")
    parts.append("\n".join(rows))
    parts.append("")
    if result.message:
        parts.append(f"**{escape_markdown(redactor.redact(result.message))}**")
        parts.append("")
    for line in format_atomic_rollback(result):
        text = escape_markdown(redactor.redact(line))
        # A rollback that failed leaves services half-applied: that must not read like a footnote.
        parts.append(f"> [!CAUTION]\n> {text}" if line.startswith("NOT rolled back") else f"- {text}")
        parts.append("")
    if result.steps:
        parts.append(render_mermaid_dag(result, redactor=redactor))
        parts.append("")
    parts.append(render_stage_table(result, redactor=redactor))
    parts.append("")
    urls = result.service_urls
    if urls:
        parts.append("### Services")
        parts.append("")
        parts.extend(
            f"- {format_code_span(redactor.redact(stage))}: {format_code_span(redactor.redact(url))}"
            for stage, url in urls.items()
        )
        parts.append("")
    failed = result.failed_stages
    if failed:
        parts.append("### Failures")
        parts.append("")
        for stage in failed:
            details = render_failure_details(
                stage, tail_lines=tail_lines, max_events=max_events, redactor=redactor
            )
            parts.append(details)
            parts.append("")
    if trimmed_note:
        parts.append(f"> [!NOTE]\n> {trimmed_note}")
        parts.append("")
    return "\n".join(parts)


def _fits(text: str, max_bytes: int) -> bool:
    return len(text.encode("utf-8")) <= max_bytes


def _cut_to_bytes(text: str, max_bytes: int, note: str) -> str:
    room = max(0, max_bytes - len(note.encode("utf-8")))
    return text.encode("utf-8")[:room].decode("utf-8", errors="ignore") + note


def render_summary(
    result: DeploymentResult,
    *,
    redactor: Redactor,
    links: SummaryLinks = SummaryLinks(),
    pipeline: Pipeline | None = None,
    max_bytes: int = SUMMARY_MAX_BYTES,
) -> str:
    """The deployment summary, at most ``max_bytes`` of UTF-8: log tails shrink first, then events."""
    # Only the trimming changes between attempts.
    render = functools.partial(_render_deployment, result, pipeline=pipeline, links=links, redactor=redactor)
    tail_lines, max_events = LOG_TAIL_LINES, MAX_EVENTS_PER_STAGE
    document = render(tail_lines=tail_lines, max_events=max_events, trimmed_note="")
    while not _fits(document, max_bytes) and (tail_lines > 0 or max_events > 0):
        if tail_lines > 0:
            tail_lines //= 2
        else:
            max_events //= 2
        what = (
            f"Logs were trimmed to the last {tail_lines} lines per container"
            if tail_lines
            else "Logs were left out"
        )
        if max_events < MAX_EVENTS_PER_STAGE:
            what += f" and events to {max_events} per stage" if max_events else " and events were left out"
        note = f"{what} to keep this summary under GitHub's 1 MiB limit; the step log has everything."
        document = render(tail_lines=tail_lines, max_events=max_events, trimmed_note=note)
    if not _fits(document, max_bytes):
        document = _cut_to_bytes(
            document,
            max_bytes,
            "\n\n> [!WARNING]\n> Summary cut at GitHub's 1 MiB limit; see the step log.\n",
        )
    return document


def render_invalid_config_summary(
    problems: Sequence[ConfigProblem],
    *,
    config_path: str,
    redactor: Redactor,
    max_bytes: int = SUMMARY_MAX_BYTES,
) -> str:
    """Every problem of an invalid ``bodywork.yaml`` (annotations show only the first ten)."""
    errors = [p for p in problems if p.severity is Severity.ERROR]
    warnings = [p for p in problems if p.severity is Severity.WARNING]
    counts = f"{len(errors)} error{'s' if len(errors) != 1 else ''}"
    if warnings:
        counts += f", {len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
    lines = [
        f"## ❌ {format_code_span(redactor.redact(config_path))} is invalid ({counts})",
        "",
        "Nothing was deployed. Fix the problems below and push again.",
        "",
        "| | Location | Field | Problem |",
        "|---|---|---|---|",
    ]
    for problem in [*errors, *warnings]:
        icon = "❌" if problem.severity is Severity.ERROR else "⚠️"
        location = format_code_span(redactor.redact(problem.location))
        field = format_code_span(redactor.redact(problem.path)) if problem.path else "(document)"
        lines.append(
            f"| {icon} | {location} | {field} | {escape_markdown(redactor.redact(problem.message))} |"
        )
    lines.append("")
    document = "\n".join(lines)
    if not _fits(document, max_bytes):
        document = _cut_to_bytes(
            document, max_bytes, "\n\n> [!WARNING]\n> List cut at GitHub's 1 MiB limit; see the step log.\n"
        )
    return document


def render_one_line_summary(result: DeploymentResult, *, redactor: Redactor) -> str:
    """The ``summary`` output: one line, redacted."""
    return " ".join(redactor.redact(result.one_line()).split())


def render_one_line_invalid_config(problems: Sequence[ConfigProblem], *, config_path: str) -> str:
    errors = sum(1 for p in problems if p.severity is Severity.ERROR)
    return f"{config_path}: invalid ({errors} error{'s' if errors != 1 else ''}); nothing was deployed"
