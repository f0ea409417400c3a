"""Atomic deploys, the pure part: an object put back as it was before the run, and what the result says.

The executor decides which service stages an atomic deploy rolls back (``select_atomic_rollbacks``);
the cluster backend restores them with ``build_restored_object``; the terminal, the job summary and
the action's error messages describe the outcome with ``format_atomic_rollback``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bodywork_action.reconcile import ANNOTATION_ROLLED_BACK_FROM, Obj
from bodywork_action.results import DeploymentResult, StageStatus

# Fields of a Service the API server allocated: kept from the live object (they can't be changed).
_ALLOCATED_SERVICE_FIELDS = ("clusterIP", "clusterIPs")
_NOT_CONTENT = ("metadata", "status")  # the live object's; metadata is rebuilt from the labels up


def build_restored_object(
    previous: Mapping[str, Any], current: Mapping[str, Any] | None, *, rolled_back_from: str = ""
) -> Obj:
    """The body that puts ``previous`` (the object as read before the run touched it) back in place of
    ``current``: its labels, annotations and content (``spec``, or a Secret's ``type`` and ``data``),
    on the live object's resourceVersion (a PUT), or a create when ``current`` is gone.
    ``rolled_back_from`` (a deployment id) is recorded as an annotation."""
    meta = previous.get("metadata") or {}
    annotations = dict(meta.get("annotations") or {})
    if rolled_back_from:
        annotations[ANNOTATION_ROLLED_BACK_FROM] = rolled_back_from
    metadata: Obj = {"name": meta.get("name"), "namespace": meta.get("namespace")}
    if meta.get("labels"):
        metadata["labels"] = dict(meta["labels"])
    if annotations:
        metadata["annotations"] = annotations
    body: Obj = {key: value for key, value in previous.items() if key not in _NOT_CONTENT}
    body["metadata"] = metadata
    if current is not None:
        metadata["resourceVersion"] = (current.get("metadata") or {}).get("resourceVersion")
        if previous.get("kind") == "Service":
            live = current.get("spec") or {}
            spec = dict(body.get("spec") or {})
            spec.update({key: live[key] for key in _ALLOCATED_SERVICE_FIELDS if key in live})
            body["spec"] = spec
    return body


def format_atomic_rollback(result: DeploymentResult) -> list[str]:
    """What an atomic deploy that did not succeed did to its services, one line each (none otherwise):
    which were rolled back (or removed), which could not be and in what state they were left, and the
    batch stages that ran, which are never undone."""
    if not result.atomic or result.succeeded or result.dry_run:
        return []
    lines: list[str] = []
    rolled = [
        f"{r.stage} ({'removed: new in this deploy' if r.rollback_removed else 'previous revision'})"
        for r in result.stages
        if r.rolled_back and not r.run_on_failure
    ]
    if rolled:
        lines.append(f"Rolled back (atomic): {', '.join(rolled)}")
    broken = [f"{r.stage}: {r.rollback_error}" for r in result.stages if r.rollback_error]
    if broken:
        lines.append(f"NOT rolled back (atomic rollback failed): {'; '.join(broken)}")
    ran = [
        r.stage
        for r in result.stages
        if r.kind.value == "batch"
        and r.status in (StageStatus.SUCCEEDED, StageStatus.FAILED)
        and not r.run_on_failure
    ]
    if ran:
        lines.append(f"Batch stages that ran are not undone: {', '.join(ran)}")
    return lines
