"""What is deployed for a pipeline (the ``status`` command) and removing it (the ``delete`` command).

Shell: reads and deletes through ``client.py``; the verdicts come from ``verdicts.py`` and ownership
from ``reconcile.py`` — only objects labelled managed-by this tool and part of this pipeline are
touched, and the namespace only if this tool created it for this pipeline.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bodywork_action import render
from bodywork_action.errors import ClusterError
from bodywork_action.kube.client import (
    DEPLOYMENT,
    INGRESS,
    JOB,
    NAMESPACE,
    POD,
    SECRET,
    SERVICE,
    Cluster,
    Kind,
    KubeTarget,
    connect_cluster,
)
from bodywork_action.kube.lease import DEFAULT_LOCK_TIMEOUT_SECONDS, build_holder, hold_pipeline_lock
from bodywork_action.model import DeployContext, Pipeline
from bodywork_action.reconcile import (
    Obj,
    build_label_selector,
    build_owner_selector,
    is_namespace_created_for,
    is_owned,
    object_name,
)
from bodywork_action.results import DeleteResult, PipelineState, StageState
from bodywork_action.stage_identity import select_current_states, stage_of
from bodywork_action.verdicts import Verdict, classify_deployment, classify_job

# status and delete wait at most this long for an API server that went away (a deploy has its own).
COMMAND_TIMEOUT_SECONDS = 600

# What a pipeline owns in its namespace, besides Secrets (which `delete` removes only when ours).
PRUNABLE = (DEPLOYMENT, SERVICE, INGRESS, JOB)


@dataclass
class ObservedObjects:
    """What this pipeline had in the namespace when the deployment started (one list per kind)."""

    by_kind: dict[str, dict[str, Obj]] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> Obj | None:
        return self.by_kind.get(kind, {}).get(name)

    def all(self) -> list[Obj]:
        return [obj for objs in self.by_kind.values() for obj in objs.values()]


def read_observed_objects(cluster: Cluster, pipeline: Pipeline, namespace: str) -> ObservedObjects:
    """One list per kind of everything this pipeline owns in ``namespace``."""
    selector = build_owner_selector(pipeline)
    observed = ObservedObjects()
    for kind in PRUNABLE:
        listed = cluster.read_objects(kind, namespace=namespace, label_selector=selector)
        observed.by_kind[kind.kind] = {object_name(o): o for o in listed.items}
    return observed


def _namespace_for(pipeline: Pipeline, namespace: str) -> str:
    return render.target_namespace(pipeline, DeployContext(repository_url="", commit="", namespace=namespace))


def read_pipeline_state(cluster: Cluster, pipeline: Pipeline, *, namespace: str = "") -> PipelineState:
    namespace = _namespace_for(pipeline, namespace)
    namespace_object = cluster.read_object(NAMESPACE, namespace)
    if namespace_object is None:
        return PipelineState(pipeline.name, namespace, False, False)
    observed = read_observed_objects(cluster, pipeline, namespace)
    pods = cluster.read_objects(POD, namespace=namespace, label_selector=build_owner_selector(pipeline)).items
    states: list[StageState] = []
    for deployment in sorted(observed.by_kind["Deployment"].values(), key=object_name):
        verdict = classify_deployment(deployment, pods)
        name = object_name(deployment)
        service = observed.get("Service", name)
        ports = ((service or {}).get("spec") or {}).get("ports") or []
        url = f"http://{name}.{namespace}.svc.cluster.local:{ports[0]['port']}" if ports else ""
        ingress = observed.get("Ingress", name)
        states.append(_state(deployment, "service", verdict, url=url, ingress=ingress))
    latest_jobs: dict[str, Obj] = {}
    for job in observed.by_kind["Job"].values():
        stage = stage_of(job)
        stamp = str(job["metadata"].get("creationTimestamp") or "")
        if stage not in latest_jobs or stamp >= str(
            latest_jobs[stage]["metadata"].get("creationTimestamp") or ""
        ):
            latest_jobs[stage] = job
    for _, job in sorted(latest_jobs.items()):
        states.append(_state(job, "batch", classify_job(job, pods)))
    return PipelineState(
        pipeline.name,
        namespace,
        True,
        is_namespace_created_for(namespace_object, pipeline),
        select_current_states(states, pipeline),  # one row per stage, also while it changes kind
    )


def _state(obj: Obj, kind: str, verdict: Verdict, *, url: str = "", ingress: Obj | None = None) -> StageState:
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    paths = [
        p.get("path", "")
        for rule in ((ingress or {}).get("spec") or {}).get("rules") or []
        for p in (rule.get("http") or {}).get("paths") or []
    ]
    return StageState(
        stage=str(
            annotations.get(render.ANNOTATION_STAGE) or labels.get(render.LABEL_NAME) or object_name(obj)
        ),
        kind=kind,
        status=verdict.phase.value,
        object=f"{obj.get('kind')}/{object_name(obj)}",
        commit=str(annotations.get(render.ANNOTATION_COMMIT) or labels.get(render.LABEL_COMMIT) or ""),
        reason=verdict.reason,
        message=verdict.message,
        url=url,
        ingress_path=paths[0] if paths else "",
        attempts=verdict.attempts,
    )


def read_status(
    pipeline: Pipeline, *, target: KubeTarget, namespace: str = "", environ: Mapping[str, str] | None = None
) -> PipelineState:
    """What is deployed for ``pipeline``, per stage (the ``status`` command)."""
    cluster = connect_cluster(target, environ=environ)
    cluster.deadline = time.monotonic() + COMMAND_TIMEOUT_SECONDS  # an API server away: not forever
    try:
        return read_pipeline_state(cluster, pipeline, namespace=namespace)
    finally:
        cluster.close()


def remove_pipeline(
    cluster: Cluster, pipeline: Pipeline, *, namespace: str = "", dry_run: bool = False
) -> DeleteResult:
    namespace = _namespace_for(pipeline, namespace)
    namespace_object = cluster.read_object(NAMESPACE, namespace)
    if namespace_object is None:
        return DeleteResult(
            pipeline.name, namespace, message=f"namespace {namespace} does not exist", dry_run=dry_run
        )
    label = render.pipeline_label(pipeline)
    managed = build_label_selector({render.LABEL_MANAGED_BY: render.MANAGED_BY})
    ours: list[tuple[Kind, str]] = []
    others = 0
    for kind in (*PRUNABLE, SECRET):
        for obj in cluster.read_objects(kind, namespace=namespace, label_selector=managed).items:
            if is_owned(obj, label):
                ours.append((kind, object_name(obj)))
            elif kind is not SECRET:
                others += 1
    deleted: list[str] = []
    for kind, name in ours:
        try:
            if cluster.delete_object(kind, name, namespace=namespace, dry_run=dry_run):
                deleted.append(f"{kind.kind}/{name}")
        except ClusterError as exc:  # say what is already gone, and what is left
            left = [f"{k.kind}/{n}" for k, n in ours if f"{k.kind}/{n}" not in deleted]
            done = ", ".join(deleted) or "nothing"
            raise type(exc)(
                f"{exc}; deleted before this: {done}; still there: {', '.join(left)}",
                verb=exc.verb,
                resource=exc.resource,
                name=exc.name,
                namespace=exc.namespace,
                status=exc.status,
                reason=exc.reason,
            ) from exc
    created_by_tool = is_namespace_created_for(namespace_object, pipeline)
    if created_by_tool and not others:
        cluster.delete_object(NAMESPACE, namespace, dry_run=dry_run)
        return DeleteResult(pipeline.name, namespace, tuple(deleted), True, dry_run=dry_run)
    why = (
        "it was not created by bodywork-action for this pipeline"
        if not created_by_tool
        else f"{others} object(s) of other pipelines are still in it"
    )
    return DeleteResult(
        pipeline.name, namespace, tuple(deleted), False, f"namespace {namespace} kept: {why}", dry_run
    )


def delete_pipeline(
    pipeline: Pipeline,
    *,
    target: KubeTarget,
    namespace: str = "",
    dry_run: bool = False,
    environ: Mapping[str, str] | None = None,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    run_url: str = "",
    report: Callable[[str], None] | None = None,
    timeout_seconds: float = COMMAND_TIMEOUT_SECONDS,
) -> DeleteResult:
    """Remove what ``pipeline`` created (the ``delete`` command); its namespace only if this tool made it.

    Holds the pipeline's Lease while it deletes (not for a dry run), so it never removes objects
    under a deploy that is running; raises ``LockTimeout`` naming the holder. An API server that
    goes away is waited for with a progress line, at most ``timeout_seconds``."""
    cluster = connect_cluster(target, environ=environ)
    cluster.deadline = time.monotonic() + timeout_seconds
    cluster.on_wait = report
    try:
        resolved = _namespace_for(pipeline, namespace)
        if dry_run or cluster.read_object(NAMESPACE, resolved) is None:
            return remove_pipeline(cluster, pipeline, namespace=namespace, dry_run=dry_run)
        holder = build_holder(
            command="delete", deployment_id=f"delete-{secrets.token_hex(4)}", run_url=run_url
        )
        with hold_pipeline_lock(
            cluster,
            namespace=resolved,
            pipeline_label=render.pipeline_label(pipeline),
            holder=holder,
            timeout_seconds=lock_timeout_seconds,
            report=report,
        ):
            return remove_pipeline(cluster, pipeline, namespace=namespace, dry_run=dry_run)
    finally:
        cluster.close()
