"""The ``diff`` command's cluster side: what a deploy would change, against what is live.

Shell. Renders the ``Plan`` exactly as a deploy does (``plan.render_plan`` with a fresh deployment id
and restart token, ``deploy.prepare_secrets`` for the Secrets), sends every object with dryRun=All so
the API server fills in its defaults and admission runs, reads what the pipeline has live (and what
a deploy would prune, ``reconcile.build_prune_plan``), then leaves the comparing and normalising to
``diffing.py``. Nothing is written: every request is a read or a dry run, and no Lease is taken.
"""

from __future__ import annotations

import secrets as random_tokens
import time
from collections.abc import Mapping

from bodywork_action import diffing, render
from bodywork_action.diffing import ObjectDiff, PipelineDiff
from bodywork_action.kube.client import NAMESPACE, Cluster, KubeTarget, connect_cluster
from bodywork_action.kube.deploy import prepare_secrets, redactor_for
from bodywork_action.kube.inventory import COMMAND_TIMEOUT_SECONDS, ObservedObjects, read_observed_objects
from bodywork_action.kube.pull_secrets import describe_missing_pull_secrets, find_missing_pull_secrets
from bodywork_action.model import DeployContext, Pipeline
from bodywork_action.plan import render_plan
from bodywork_action.reconcile import (
    Obj,
    build_prune_plan,
    build_replacement,
    build_unique_context,
    is_terminating,
    object_name,
)
from bodywork_action.secret_groups import SecretSupply
from bodywork_action.selection import EVERY_STAGE, StageSelection, select_stage_objects
from bodywork_action.stage_identity import build_stage_kinds


def diff_pipeline(
    pipeline: Pipeline,
    context: DeployContext,
    *,
    target: KubeTarget,
    secrets: SecretSupply | None = None,
    config_dir: str = "",
    environ: Mapping[str, str] | None = None,
    timeout_seconds: float = COMMAND_TIMEOUT_SECONDS,
    selection: StageSelection = EVERY_STAGE,
) -> PipelineDiff:
    """What deploying ``pipeline`` at ``context`` would create, change and delete (the ``diff``
    command); ``selection``: what a partial deploy would (its stages only). Raises as a deploy does
    before its first stage: ``MissingSecrets``, ``InputError``, ``ClusterAuthError``,
    ``ClusterUnreachable``, ``ClusterError`` (an object the API server refuses)."""
    cluster = connect_cluster(target, environ=environ)
    cluster.deadline = time.monotonic() + timeout_seconds  # an API server that went away: not forever
    try:
        return read_pipeline_diff(
            cluster,
            pipeline,
            context,
            secrets=secrets or SecretSupply(),
            config_dir=config_dir,
            selection=selection,
        )
    finally:
        cluster.close()


def read_pipeline_diff(
    cluster: Cluster,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    secrets: SecretSupply,
    config_dir: str = "",
    selection: StageSelection = EVERY_STAGE,
) -> PipelineDiff:
    """``diff_pipeline`` on an already connected cluster."""
    plan = render_plan(
        pipeline,
        build_unique_context(context, now_seconds=time.time(), entropy=random_tokens.token_hex(3)),
        config_dir=config_dir,
        selection=selection,
    )
    namespace = plan.namespace
    namespace_object = cluster.read_object(NAMESPACE, namespace)
    terminating = namespace_object is not None and is_terminating(namespace_object)
    exists = namespace_object is not None and not terminating
    prepared = prepare_secrets(cluster, pipeline, namespace, secrets, namespace_exists=exists)
    notes: list[str] = []
    if selection.partial:  # as a partial deploy: the other stages' objects are neither applied nor pruned
        notes.append(
            f"partial run ({selection.description}): what a deploy of only these stages would change; "
            f"left as they are: {', '.join(selection.skipped)}"
        )
    missing_pull_secrets = find_missing_pull_secrets(
        cluster, context.image_pull_secrets, namespace=namespace, namespace_exists=exists
    )
    if missing_pull_secrets:  # as the deploy would warn before applying anything
        notes.append(describe_missing_pull_secrets(missing_pull_secrets, namespace).removeprefix("warning: "))
    objects: list[ObjectDiff] = []
    observed = read_observed_objects(cluster, pipeline, namespace) if exists else ObservedObjects()

    def admitted(manifest: Obj, existing: Obj | None) -> Obj:
        """``manifest`` as the API server would store it (its defaults filled in, nothing stored);
        as rendered where it can't say yet, in a namespace that does not exist."""
        if not exists:
            return manifest
        if existing is None:
            return cluster.create_object(manifest, dry_run=True)
        return cluster.replace_object(build_replacement(manifest, existing), dry_run=True)

    if terminating:
        notes.append(f"namespace {namespace} is being deleted: a deploy waits for it to go, then creates it")
        objects.append(diffing.compare_object(plan.namespace_object, None))
    elif not exists:
        notes.append(
            f"namespace {namespace} does not exist: its objects are shown as rendered, without the "
            "defaults the API server would add"
        )
        objects.append(
            diffing.compare_object(cluster.create_object(plan.namespace_object, dry_run=True), None)
        )
    for manifest in prepared.manifests:
        existing = prepared.existing.get(object_name(manifest))
        objects.append(diffing.compare_secret(admitted(manifest, existing), existing))
    jobs = list(observed.by_kind.get("Job", {}).values())
    for stage_plan in plan.selected_stages():
        for manifest in stage_plan.objects:
            kind = str(manifest["kind"])
            if kind == "Job":
                newest = diffing.newest_job_of_stage(jobs, stage_plan.stage.k8s_name)
                objects.append(diffing.compare_job(admitted(manifest, None), newest))
            else:
                existing = observed.get(kind, object_name(manifest))
                objects.append(diffing.compare_object(admitted(manifest, existing), existing))
    rendered_jobs = [o for o in plan.stage_objects() if o["kind"] == "Job"]  # kept first, as a deploy does
    prune = build_prune_plan(
        plan.objects(),
        select_stage_objects([*observed.all(), *rendered_jobs], pipeline, selection),
        pipeline_label=render.pipeline_label(pipeline),
    )
    deleted, old_jobs = diffing.diff_pruned(
        prune, observed.all(), stage_kinds=build_stage_kinds(plan.objects())
    )
    result = PipelineDiff(
        pipeline=pipeline.name,
        namespace=namespace,
        target=f"cluster {cluster.server}",
        objects=(*objects, *deleted),
        old_jobs=tuple(old_jobs),
        notes=tuple(notes),
    )
    return diffing.redact_diff(result, redactor_for(secrets, prepared))
