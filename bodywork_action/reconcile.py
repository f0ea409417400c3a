"""Pure decisions about objects already in the cluster: which are ours, what to prune, how to replace.

Core: plain dicts in, plain values out; ``kube/deploy.py`` and ``kube/inventory.py`` read the cluster,
ask these functions, then act. Ownership is by label only (managed-by this tool *and* part of this
pipeline): nothing else is ever replaced, pruned or deleted, whatever its name.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bodywork_action import render
from bodywork_action.model import DeployContext, Pipeline
from bodywork_action.stage_identity import build_stage_kinds, is_of_former_kind, stage_of

Obj = dict[str, Any]

# On a Deployment that was rolled back: the deployment id whose rollout failed.
ANNOTATION_ROLLED_BACK_FROM = "bodywork.dev/rolled-back-from"
JOB_HISTORY_PER_STAGE = 3  # Jobs kept per stage after a successful deployment (older ones are pruned)
PRUNABLE_KINDS = ("Deployment", "Service", "Ingress", "Job")


def object_name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


def build_label_selector(labels: Mapping[str, str]) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def build_unique_context(context: DeployContext, *, now_seconds: float, entropy: str) -> DeployContext:
    """A context with a deployment id and restart token: every deploy gets fresh Job names, and
    re-deploying the same commit still rolls every service."""
    deployment_id = context.deployment_id or f"{int(now_seconds)}-{entropy}"
    return replace(context, deployment_id=deployment_id, restart_token=context.restart_token or deployment_id)


def build_owner_selector(pipeline: Pipeline) -> str:
    return build_label_selector(
        {render.LABEL_MANAGED_BY: render.MANAGED_BY, render.LABEL_PART_OF: render.pipeline_label(pipeline)}
    )


def is_owned(obj: Mapping[str, Any], pipeline_label: str) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(render.LABEL_MANAGED_BY) == render.MANAGED_BY and labels.get(render.LABEL_PART_OF) == (
        pipeline_label
    )


def is_same_object(manifest: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    """Is ``found`` the object ``manifest`` describes, as a create whose answer was lost left it?

    Every label and annotation we sent is there with our value (for Jobs that includes this
    deployment's id; for a Deployment the pod template's restart token, unique per deploy), and a
    Secret holds exactly the data we sent. Fields the API server adds are ignored."""

    def contains(sent: Mapping[str, Any] | None, stored: Mapping[str, Any] | None) -> bool:
        return all((stored or {}).get(key) == value for key, value in (sent or {}).items())

    sent_meta = manifest.get("metadata") or {}
    stored_meta = found.get("metadata") or {}
    if not (
        contains(sent_meta.get("labels"), stored_meta.get("labels"))
        and contains(sent_meta.get("annotations"), stored_meta.get("annotations"))
    ):
        return False
    sent_template = ((manifest.get("spec") or {}).get("template") or {}).get("metadata") or {}
    stored_template = ((found.get("spec") or {}).get("template") or {}).get("metadata") or {}
    if not contains(sent_template.get("annotations"), stored_template.get("annotations")):
        return False
    if manifest.get("kind") == "Secret":
        sent_data = dict(manifest.get("data") or {})
        sent_data.update(
            {
                key: base64.b64encode(str(value).encode()).decode()
                for key, value in (manifest.get("stringData") or {}).items()
            }
        )
        return sent_data == dict(found.get("data") or {})
    return True


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def is_namespace_created_for(namespace_object: Mapping[str, Any] | None, pipeline: Pipeline) -> bool:
    """Did this tool create ``namespace_object`` for ``pipeline``? Only then may ``delete`` remove it."""
    meta = (namespace_object or {}).get("metadata") or {}
    return (meta.get("labels") or {}).get(render.LABEL_MANAGED_BY) == render.MANAGED_BY and (
        meta.get("annotations") or {}
    ).get(render.ANNOTATION_NAMESPACE_CREATED_FOR) == render.pipeline_label(pipeline)


def build_prune_plan(
    desired: Iterable[Mapping[str, Any]],
    observed: Iterable[Mapping[str, Any]],
    *,
    pipeline_label: str,
    keep_jobs_per_stage: int = JOB_HISTORY_PER_STAGE,
) -> list[tuple[str, str]]:
    """(kind, name) of every owned object the new deployment no longer has, oldest Jobs beyond history.

    Pure diff of desired vs. observed. Only objects labelled managed-by this tool *and* part of this
    pipeline are ever candidates; anything else is left alone whatever its name. A stage that changed
    kind loses all of its old kind's objects, its Job history included (``stage_identity.py``).
    """
    desired = list(desired)
    wanted = {(str(o["kind"]), str(o["metadata"]["name"])) for o in desired}
    stage_kinds = build_stage_kinds(desired)
    prune: list[tuple[str, str]] = []
    jobs_by_stage: dict[str, list[Mapping[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for obj in observed:
        key = (str(obj.get("kind")), object_name(obj))
        if key in seen or not is_owned(obj, pipeline_label):
            continue
        seen.add(key)
        if is_of_former_kind(obj, stage_kinds):
            prune.append(key)
        elif key[0] == "Job":
            jobs_by_stage.setdefault(stage_of(obj), []).append(obj)
        elif key[0] in ("Deployment", "Service", "Ingress") and key not in wanted:
            prune.append(key)
    for jobs in jobs_by_stage.values():
        newest_first = sorted(jobs, key=job_age_key, reverse=True)
        kept = [j for j in newest_first if ("Job", object_name(j)) in wanted]
        for job in newest_first:
            if ("Job", object_name(job)) in wanted:
                continue
            if len(kept) < keep_jobs_per_stage:
                kept.append(job)
            else:
                prune.append(("Job", object_name(job)))
    return prune


def job_age_key(job: Mapping[str, Any]) -> tuple[str, int]:
    """Creation time (whole seconds); ties broken by the last write's resourceVersion, which for
    Jobs that ran one after another follows their order."""
    meta = job.get("metadata") or {}
    version = str(meta.get("resourceVersion") or "")
    return str(meta.get("creationTimestamp") or ""), int(version) if version.isdigit() else 0


def build_replacement(manifest: Mapping[str, Any], existing: Mapping[str, Any]) -> Obj:
    """The body of a PUT replacing ``existing`` by ``manifest``: its resourceVersion, and the fields
    the API server allocated and won't let us drop (a Service's cluster IPs)."""
    body: Obj = {**manifest, "metadata": dict(manifest.get("metadata") or {})}
    body["metadata"]["resourceVersion"] = (existing.get("metadata") or {}).get("resourceVersion")
    if manifest.get("kind") == "Service":
        allocated = existing.get("spec") or {}
        spec = dict(body.get("spec") or {})
        for key in ("clusterIP", "clusterIPs"):
            if key in allocated and key not in spec:
                spec[key] = allocated[key]
        body["spec"] = spec
    return body


def build_secret_keys(secret: Mapping[str, Any] | None) -> frozenset[str]:
    if not secret:
        return frozenset()
    return frozenset(secret.get("data") or {}) | frozenset(secret.get("stringData") or {})


def select_log_containers(pod: Mapping[str, Any]) -> list[tuple[str, bool]]:
    """(container, previous?) for every init and app container: ``previous`` for a container that
    crashed and is waiting to restart, whose current instance has no logs yet."""
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    statuses = {
        s.get("name"): s
        for s in list(status.get("initContainerStatuses") or []) + list(status.get("containerStatuses") or [])
    }
    chosen = []
    for container in list(spec.get("initContainers") or []) + list(spec.get("containers") or []):
        name = str(container.get("name"))
        state = statuses.get(name) or {}
        crashed = bool((state.get("state") or {}).get("waiting")) and int(state.get("restartCount") or 0) > 0
        chosen.append((name, crashed))
    return chosen


def secret_values_of(secrets: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every value held by these Secrets (``data`` decoded from base64, and ``stringData``): what a
    deploy must redact besides the values it was given — keys kept from an existing secret, or copied
    from Bodywork's store, reach stage logs just the same."""
    values: list[str] = []
    for secret in secrets:
        for encoded in (secret.get("data") or {}).values():
            try:
                values.append(base64.b64decode(str(encoded), validate=True).decode("utf-8"))
            except (binascii.Error, ValueError):  # not text: its base64 form is all that can show
                values.append(str(encoded))
        values.extend(str(v) for v in (secret.get("stringData") or {}).values())
    return [value for value in values if value]
