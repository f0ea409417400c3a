"""What a deploy would change, object by object: normalisation, comparison and the three formats.

Core: plain dicts in, values out. ``kube/diff.py`` renders the same ``Plan`` a deploy renders, has the
API server fill in its defaults (dryRun=All), reads what is live, and asks this module:

- ``normalise`` drops what the server owns (status, uid, resourceVersion, managedFields, generation,
  timestamps, the Deployment controller's revision) and what ``render.py`` stamps afresh on every
  deploy (deployment id, restart token, run URL, actor, the Job's per-deployment label and name), so a
  re-deploy of the same commit with the same config compares equal;
- ``compare_object`` / ``compare_job`` / ``compare_secret`` give one ``ObjectDiff`` each: a unified
  diff of the YAML (sorted keys) between live and what the deploy would store. A Job is compared with
  the newest Job of its stage (Job names are unique per deployment) and always "would run again";
- a Secret's values are compared but never shown: its keys are listed as added, removed, changed or
  unchanged, and only the rest of the object (labels, type) is diffed;
- ``diff_pruned`` turns ``reconcile.build_prune_plan`` into deleted objects. Jobs pruned only because
  a stage keeps ``JOB_HISTORY_PER_STAGE`` of them are housekeeping, listed apart and not counted.
"""

from __future__ import annotations

import base64
import binascii
import copy
import difflib
import html
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from bodywork_action import render, summary
from bodywork_action.reconcile import (
    ANNOTATION_ROLLED_BACK_FROM,
    JOB_HISTORY_PER_STAGE,
    Obj,
    job_age_key,
    object_name,
)
from bodywork_action.redact import Redactor
from bodywork_action.stage_identity import is_of_former_kind

# Written by the API server or its controllers: never part of what a deploy changes.
SERVER_OWNED_METADATA = (
    "managedFields",
    "resourceVersion",
    "uid",
    "generation",
    "creationTimestamp",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
SERVER_OWNED_ANNOTATIONS = ("deployment.kubernetes.io/revision",)
# The Job controller's labels (and selector) for one Job's pods: they name that Job, so they differ
# between any two Jobs of a stage.
JOB_OWN_LABELS = (
    "batch.kubernetes.io/controller-uid",
    "batch.kubernetes.io/job-name",
    "controller-uid",
    "job-name",
)
# Stamped by render.py on every deploy: a re-deploy of the same commit and config differs only here.
PER_DEPLOY_ANNOTATIONS = (
    render.ANNOTATION_DEPLOYMENT_ID,
    render.ANNOTATION_RESTART_TOKEN,
    render.ANNOTATION_RUN_URL,
    render.ANNOTATION_ACTOR,
)
PER_DEPLOY_LABELS = (render.LABEL_DEPLOYMENT,)
# Left by a rollback and dropped by the next deploy: a note on the object, not its configuration (a
# service rolled back to what bodywork.yaml says is unchanged).
ROLLBACK_ANNOTATIONS = (ANNOTATION_ROLLED_BACK_FROM,)
CONTEXT_LINES = 3


class ObjectState(str, Enum):
    CREATED = "created"
    CHANGED = "changed"
    DELETED = "deleted"
    UNCHANGED = "unchanged"


class KeyState(str, Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True)
class ObjectDiff:
    """One object of the deployment: its state and the unified diff (live → deploy) of its YAML."""

    kind: str
    name: str
    state: ObjectState
    diff: str = ""  # never holds a Secret's values
    stage: str = ""
    previous: str = ""  # a Job: the newest Job of its stage, the one compared with
    keys: tuple[tuple[str, KeyState], ...] = ()  # a Secret: each key's state, values never
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def is_change(self) -> bool:
        return self.state is not ObjectState.UNCHANGED

    def describe(self) -> str:
        """``Kind/name (stage s): state, notes``: the header of the object in every format."""
        stage = f" (stage {self.stage})" if self.stage else ""
        return ", ".join([f"{self.title}{stage}: {self.state.value}", *self.notes])

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "state": self.state.value,
            "stage": self.stage,
            "notes": list(self.notes),
            "diff": self.diff,
        }
        if self.kind == "Job":
            document["previous"] = self.previous
        if self.kind == "Secret":
            document["keys"] = {key: state.value for key, state in self.keys}
        return document


@dataclass(frozen=True)
class PipelineDiff:
    pipeline: str
    namespace: str
    target: str
    objects: tuple[ObjectDiff, ...]
    old_jobs: tuple[str, ...] = ()  # Jobs a deploy prunes as history (beyond the few kept per stage)
    notes: tuple[str, ...] = field(default_factory=tuple)

    def count(self, state: ObjectState) -> int:
        return sum(1 for obj in self.objects if obj.state is state)

    @property
    def changes(self) -> int:
        """Objects a deploy would create, change or delete."""
        return sum(1 for obj in self.objects if obj.is_change)

    def one_line(self) -> str:
        counts = ", ".join(f"{self.count(state)} {state.value}" for state in ObjectState)
        return f"{self.pipeline} in {self.namespace}: {counts}"


# ------------------------------------------------------------------------------------ normalising


def _without(mapping: Mapping[str, Any] | None, keys: Iterable[str]) -> dict[str, Any]:
    dropped = set(keys)
    return {key: value for key, value in (mapping or {}).items() if key not in dropped}


def _clean_metadata(meta: Mapping[str, Any] | None, *, job: bool) -> dict[str, Any]:
    cleaned = _without(meta, SERVER_OWNED_METADATA)
    labels = _without(cleaned.get("labels"), (*PER_DEPLOY_LABELS, *(JOB_OWN_LABELS if job else ())))
    annotations = _without(
        cleaned.get("annotations"),
        (*PER_DEPLOY_ANNOTATIONS, *SERVER_OWNED_ANNOTATIONS, *ROLLBACK_ANNOTATIONS),
    )
    for name, value in (("labels", labels), ("annotations", annotations)):
        if value:
            cleaned[name] = value
        else:
            cleaned.pop(name, None)
    if job:
        cleaned.pop("name", None)  # unique per deployment: the header names both Jobs
    return cleaned


def normalise(obj: Mapping[str, Any]) -> Obj:
    """``obj`` as a deploy decides it: without status, server-owned metadata and per-deploy stamps."""
    job = obj.get("kind") == "Job"
    cleaned: Obj = copy.deepcopy(_without(obj, ("status",)))
    cleaned["metadata"] = _clean_metadata(obj.get("metadata"), job=job)
    spec = cleaned.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("template"), dict):
        template = spec["template"]
        template["metadata"] = _clean_metadata(template.get("metadata"), job=job)
        if not template["metadata"]:
            template.pop("metadata")
        if job:
            spec.pop("selector", None)  # generated from the Job's own uid unless manualSelector
    return cleaned


def format_yaml(obj: Mapping[str, Any] | None) -> str:
    """Block YAML with sorted keys ("" for no object), the form every diff is made of."""
    if obj is None:
        return ""
    import yaml  # lazily: the CLI's --help must not pay for it

    class BlockDumper(yaml.SafeDumper):
        """Multi-line strings (the bootstrap program, a multi-line arg) as ``|`` blocks: a change to
        one of their lines is one line of the diff."""

    def represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
        style = "|" if "\n" in text else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)

    BlockDumper.add_representer(str, represent_text)
    return yaml.dump(_plain(obj), Dumper=BlockDumper, sort_keys=True, default_flow_style=False, width=110)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def unified_diff(before: str, after: str, *, from_name: str, to_name: str) -> str:
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=from_name,
        tofile=to_name,
        n=CONTEXT_LINES,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


# ------------------------------------------------------------------------------------ comparing


def _stage_of(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    return str(
        (meta.get("annotations") or {}).get(render.ANNOTATION_STAGE)
        or (meta.get("labels") or {}).get(render.LABEL_NAME)
        or ""
    )


def _compared(
    desired: Mapping[str, Any] | None,
    live: Mapping[str, Any] | None,
    *,
    desired_name: str,
    live_name: str,
    kind: str,
) -> tuple[ObjectState, str]:
    before = format_yaml(None if live is None else normalise(live))
    after = format_yaml(None if desired is None else normalise(desired))
    if live is None:
        state = ObjectState.CREATED
    elif desired is None:
        state = ObjectState.DELETED
    else:
        state = ObjectState.UNCHANGED if before == after else ObjectState.CHANGED
    text = unified_diff(
        before,
        after,
        from_name=f"live/{kind}/{live_name}" if live is not None else "/dev/null",
        to_name=f"deploy/{kind}/{desired_name}" if desired is not None else "/dev/null",
    )
    return state, text


def compare_object(
    desired: Mapping[str, Any], live: Mapping[str, Any] | None, *, notes: Sequence[str] = ()
) -> ObjectDiff:
    """A Deployment, Service, Ingress or Namespace: ``desired`` as the API server would store it."""
    kind, name = str(desired.get("kind")), object_name(desired)
    state, text = _compared(desired, live, desired_name=name, live_name=name, kind=kind)
    if kind == "Deployment" and live is not None:
        notes = (*notes, "a deploy restarts its pods")
    return ObjectDiff(kind, name, state, text, stage=_stage_of(desired), notes=tuple(notes))


def compare_job(
    desired: Mapping[str, Any], newest: Mapping[str, Any] | None, *, notes: Sequence[str] = ()
) -> ObjectDiff:
    """A batch stage's Job against the newest Job of the same stage: the stage runs again either way."""
    name = object_name(desired)
    previous = object_name(newest) if newest is not None else ""
    state, text = _compared(desired, newest, desired_name=name, live_name=previous, kind="Job")
    if newest is not None:
        notes = (f"would run again (compared with Job/{previous})", *notes)
    return ObjectDiff(
        "Job", name, state, text, stage=_stage_of(desired), previous=previous, notes=tuple(notes)
    )


def newest_job_of_stage(jobs: Iterable[Mapping[str, Any]], stage_label: str) -> Obj | None:
    """The newest of ``jobs`` whose stage label is ``stage_label`` (the pipeline's own Jobs only)."""
    of_stage = [
        dict(job)
        for job in jobs
        if ((job.get("metadata") or {}).get("labels") or {}).get(render.LABEL_NAME) == stage_label
    ]
    return max(of_stage, key=job_age_key, default=None)


def _decoded_data(secret: Mapping[str, Any] | None) -> dict[str, bytes]:
    """Every key's value as bytes: ``data`` decoded, ``stringData`` (what a create sends) over it."""
    values: dict[str, bytes] = {}
    for key, encoded in ((secret or {}).get("data") or {}).items():
        try:
            values[str(key)] = base64.b64decode(str(encoded), validate=True)
        except (binascii.Error, ValueError):  # not base64: compared as it is
            values[str(key)] = str(encoded).encode()
    for key, text in ((secret or {}).get("stringData") or {}).items():
        values[str(key)] = str(text).encode()
    return values


def compare_secret_keys(
    desired: Mapping[str, Any] | None, live: Mapping[str, Any] | None
) -> tuple[tuple[str, KeyState], ...]:
    """Each key of either Secret with its state; the values are compared here and go no further."""
    wanted, current = _decoded_data(desired), _decoded_data(live)
    states: list[tuple[str, KeyState]] = []
    for key in sorted(wanted.keys() | current.keys()):
        if key not in current:
            states.append((key, KeyState.ADDED))
        elif key not in wanted:
            states.append((key, KeyState.REMOVED))
        else:
            states.append((key, KeyState.UNCHANGED if wanted[key] == current[key] else KeyState.CHANGED))
    return tuple(states)


def compare_secret(desired: Mapping[str, Any], live: Mapping[str, Any] | None) -> ObjectDiff:
    """A Secret: its keys by state, and a diff of everything but its values (labels, type)."""
    name = object_name(desired)
    keys = compare_secret_keys(desired, live)

    def without_values(secret: Mapping[str, Any] | None) -> Obj | None:
        return None if secret is None else _without(secret, ("data", "stringData"))

    state, text = _compared(
        without_values(desired), without_values(live), desired_name=name, live_name=name, kind="Secret"
    )
    if state is ObjectState.UNCHANGED and any(s is not KeyState.UNCHANGED for _, s in keys):
        state = ObjectState.CHANGED
    return ObjectDiff("Secret", name, state, text, keys=keys)


def diff_pruned(
    prune: Iterable[tuple[str, str]],
    observed: Iterable[Mapping[str, Any]],
    *,
    stage_kinds: Mapping[str, str] | None = None,
) -> tuple[list[ObjectDiff], list[str]]:
    """``reconcile.build_prune_plan``'s answer as deleted objects, and apart from them the Jobs pruned
    as history (a stage keeps its newest ``JOB_HISTORY_PER_STAGE``), which no review needs to see.
    ``stage_kinds`` (``stage_identity.build_stage_kinds`` of the plan): a Job of a stage that is now a
    service is not history but deleted with the stage's old kind, and shown so."""
    by_key = {(str(o.get("kind")), object_name(o)): o for o in observed}
    deleted: list[ObjectDiff] = []
    old_jobs: list[str] = []
    for kind, name in prune:
        live = by_key.get((kind, name))
        former_kind = live is not None and is_of_former_kind(live, stage_kinds or {})
        if kind == "Job" and not former_kind:
            old_jobs.append(f"Job/{name}")
            continue
        state, text = _compared(None, live, desired_name=name, live_name=name, kind=kind)
        notes = ("the stage changed kind",) if former_kind else ()
        deleted.append(ObjectDiff(kind, name, state, text, stage=_stage_of(live or {}), notes=notes))
    return deleted, old_jobs


def redact_diff(diff: PipelineDiff, redactor: Redactor) -> PipelineDiff:
    """Every text of ``diff`` through ``redactor`` (a secret value passed as an arg, say)."""
    objects = tuple(
        replace(
            obj,
            diff=redactor.redact(obj.diff),
            notes=tuple(redactor.redact(note) for note in obj.notes),
        )
        for obj in diff.objects
    )
    return replace(diff, objects=objects, notes=tuple(redactor.redact(note) for note in diff.notes))


# ------------------------------------------------------------------------------------ formatting


def _old_jobs_note(diff: PipelineDiff) -> str:
    if not diff.old_jobs:
        return ""
    return (
        f"a deploy also removes {len(diff.old_jobs)} older Job(s) beyond the {JOB_HISTORY_PER_STAGE} "
        f"kept per stage: {', '.join(diff.old_jobs)}"
    )


def format_diff_text(diff: PipelineDiff) -> str:
    """A header per object, its unified diff (Secrets: their keys), then the counts on one line."""
    lines = [f"diff of {diff.pipeline} against {diff.target}, namespace {diff.namespace}"]
    lines += [f"note: {note}" for note in diff.notes]
    for obj in diff.objects:
        lines.append("")
        lines.append(f"=== {obj.describe()}")
        lines += [f"    key {key}: {state.value}" for key, state in obj.keys]
        if obj.is_change and obj.diff:
            lines.append(obj.diff.rstrip("\n"))
    note = _old_jobs_note(diff)
    if note:
        lines += ["", note]
    lines += ["", diff.one_line()]
    return "\n".join(lines)


def _markdown_object(obj: ObjectDiff, *, max_diff_lines: int | None) -> str:
    head = html.escape(" ".join(obj.describe().split()))
    body: list[str] = []
    if obj.keys:
        body.append("| key | state |\n|---|---|")
        body += [f"| {summary.format_code_span(key)} | {state.value} |" for key, state in obj.keys]
        body.append("")
    diff_lines = obj.diff.splitlines() if obj.is_change else []
    if max_diff_lines is not None and len(diff_lines) > max_diff_lines:
        left = len(diff_lines) - max_diff_lines
        diff_lines = [*diff_lines[:max_diff_lines], f"... {left} more lines in the step log"]
    if diff_lines:
        body.append(summary.format_code_block("\n".join(diff_lines), language="diff"))
    if not body:
        return f"- {head}"
    # The blank line after </details> ends the HTML block, so Markdown resumes for what follows.
    return "\n".join(["<details>", f"<summary>{head}</summary>", "", *body, "", "</details>", ""])


def render_diff_summary(diff: PipelineDiff, *, max_bytes: int = summary.SUMMARY_MAX_BYTES) -> str:
    """The job summary: counts first, then each object collapsed in ``<details>``; diffs are shortened
    until the whole fits ``max_bytes`` (GitHub refuses a step summary over 1 MiB)."""

    def document(max_diff_lines: int | None) -> str:
        counts = " · ".join(f"{diff.count(state)} {state.value}" for state in ObjectState)
        parts = [
            f"## Bodywork diff: {summary.escape_markdown(diff.pipeline)}",
            "",
            # What a deploy would do there; not the API server's address (a summary is for readers).
            f"**{counts}** in namespace {summary.format_code_span(diff.namespace)}",
            "",
        ]
        parts += [f"> [!NOTE]\n> {summary.escape_markdown(note)}\n" for note in diff.notes]
        changed = [obj for obj in diff.objects if obj.is_change]
        unchanged = [obj for obj in diff.objects if not obj.is_change]
        parts += [_markdown_object(obj, max_diff_lines=max_diff_lines) for obj in changed]
        if unchanged:
            parts += ["", "Unchanged:", ""]
            parts += [_markdown_object(obj, max_diff_lines=max_diff_lines) for obj in unchanged]
        note = _old_jobs_note(diff)
        if note:
            parts += ["", summary.escape_markdown(note)]
        if max_diff_lines is not None:
            parts += [
                "",
                f"> [!NOTE]\n> Diffs were shortened to {max_diff_lines} lines each to fit "
                "GitHub's summary limit; the step log has them whole.",
            ]
        return "\n".join(parts) + "\n"

    text = document(None)
    limit = max((len(obj.diff.splitlines()) for obj in diff.objects), default=0)
    while len(text.encode("utf-8")) > max_bytes and limit > 0:
        limit //= 2
        text = document(limit)
    if len(text.encode("utf-8")) > max_bytes:
        cut = "\n\n> [!WARNING]\n> Summary cut at GitHub's 1 MiB limit; see the step log.\n"
        room = max(0, max_bytes - len(cut.encode("utf-8")))
        text = text.encode("utf-8")[:room].decode("utf-8", errors="ignore") + cut
    return text
