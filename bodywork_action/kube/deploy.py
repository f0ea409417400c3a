"""The cluster deploy engine: secrets, namespace, the stage objects, waiting by watching, rollback, pruning.

Shell. ``deploy_pipeline`` renders every object first (``render.py``), checks that every secret key a
stage needs exists *before* anything is created (``secret_groups.py``), then hands the DAG to
``executor.execute`` with ``ClusterBackend``, which runs one stage: a Job for a batch stage, a
Deployment (then its Service and Ingress) for a service stage, each watched to a verdict decided by
``status.py``. ``read_status`` and ``delete_pipeline`` are the ``status`` and ``delete`` commands.

All Kubernetes I/O goes through ``cluster.py``. What this module owns beyond Bodywork 3.0 (spec §5,
§10): real retries, fail-fast verdicts, rollback to the exact previous pod template, pruning that
only ever touches objects labelled as ours, a namespace deleted only if this tool created it.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bodywork_action import render
from bodywork_action.errors import ClusterAuthError, ClusterConflict, ClusterUnreachable, MissingSecrets
from bodywork_action.executor import Progress, ProgressKind, execute
from bodywork_action.kube.client import (
    DEPLOYMENT,
    EVENT,
    INGRESS,
    JOB,
    NAMESPACE,
    POD,
    SECRET,
    SERVICE,
    Cluster,
    ClusterError,
    Kind,
    KubeTarget,
    ObjectWatch,
    WatchEvent,
    build_label_selector,
    connect_cluster,
    kind_of,
)
from bodywork_action.model import DeployContext, Pipeline, Stage, StageKind
from bodywork_action.redact import Redactor
from bodywork_action.results import (
    DeploymentResult,
    DeploymentStatus,
    EventRecord,
    StageResult,
    StageStatus,
)
from bodywork_action.secret_groups import (
    BODYWORK_SECRETS_NAMESPACE,
    SecretSupply,
    build_needed_keys,
    build_secret_plan,
    build_store_secret_name,
)
from bodywork_action.verdicts import Phase, Verdict, classify_deployment, classify_job, select_events

Obj = dict[str, Any]
Reporter = Callable[[Progress], None]

# On a Namespace this tool created: only such a namespace is ever deleted (by ``delete``).
ANNOTATION_NAMESPACE_CREATED_FOR = "bodywork.dev/created-for-pipeline"
# On a Deployment that was rolled back: the deployment id whose rollout failed.
ANNOTATION_ROLLED_BACK_FROM = "bodywork.dev/rolled-back-from"
LOG_TAIL_LINES = 100  # per container of a failed pod
LOG_PODS_MAX = 3  # failed pods whose logs are fetched, per stage
JOB_HISTORY_PER_STAGE = 3  # Jobs kept per stage after a successful deployment (older ones are pruned)
# The cluster enforces activeDeadlineSeconds / progressDeadlineSeconds; this is our own backstop for a
# cluster that never reports (e.g. a Deployment controller that is down).
CLIENT_DEADLINE_GRACE_SECONDS = 60
# How quickly Ctrl+C / SIGTERM is noticed while waiting. Cluster state arrives by watch events and is
# acted on the moment it arrives; this timer only re-checks the local cancel flag.
CANCEL_CHECK_INTERVAL_SECONDS = 0.2
WATCH_THREAD_JOIN_SECONDS = 2.0
PRUNABLE_KINDS = (DEPLOYMENT, SERVICE, INGRESS, JOB)
# A namespace still being deleted (e.g. `delete` just before a redeploy) refuses new objects; we wait
# for it to go, up to this long, before applying anything.
NAMESPACE_TERMINATING_WAIT_SECONDS = 300
NAMESPACE_POLL_SECONDS = 2.0  # only without list/watch permission on namespaces


def _ignore(_: Progress) -> None:
    return None


# ----------------------------------------------------------------------------------- pure helpers


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


def build_prune_plan(
    desired: Iterable[Mapping[str, Any]],
    observed: Iterable[Mapping[str, Any]],
    *,
    pipeline_label: str,
    keep_jobs_per_stage: int = JOB_HISTORY_PER_STAGE,
) -> list[tuple[str, str]]:
    """(kind, name) of every owned object the new deployment no longer has, oldest Jobs beyond history.

    Pure diff of desired vs. observed. Only objects labelled managed-by this tool *and* part of this
    pipeline are ever candidates; anything else is left alone whatever its name.
    """
    wanted = {(str(o["kind"]), str(o["metadata"]["name"])) for o in desired}
    prune: list[tuple[str, str]] = []
    jobs_by_stage: dict[str, list[Mapping[str, Any]]] = {}
    seen: set[tuple[str, str]] = set()
    for obj in observed:
        meta = obj.get("metadata") or {}
        key = (str(obj.get("kind")), str(meta.get("name")))
        if key in seen or not is_owned(obj, pipeline_label):
            continue
        seen.add(key)
        if key[0] == "Job":
            stage = str((meta.get("labels") or {}).get(render.LABEL_NAME, ""))
            jobs_by_stage.setdefault(stage, []).append(obj)
        elif key[0] in ("Deployment", "Service", "Ingress") and key not in wanted:
            prune.append(key)
    for jobs in jobs_by_stage.values():
        newest_first = sorted(
            jobs,
            key=_job_age_key,
            reverse=True,
        )
        kept = [j for j in newest_first if ("Job", j["metadata"]["name"]) in wanted]
        for job in newest_first:
            if ("Job", job["metadata"]["name"]) in wanted:
                continue
            if len(kept) < keep_jobs_per_stage:
                kept.append(job)
            else:
                prune.append(("Job", str(job["metadata"]["name"])))
    return prune


def _job_age_key(job: Mapping[str, Any]) -> tuple[str, int]:
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


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name", ""))


# ------------------------------------------------------------------------------------ waiting


Caches = Mapping[str, Mapping[str, Obj]]


def wait_for_verdict(
    watches: Mapping[str, ObjectWatch],
    decide: Callable[[Caches], Verdict],
    *,
    cancel: threading.Event,
    deadline_seconds: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict | None:
    """Feed every watch's events into one cache per watch and ask ``decide`` after each change.

    Returns the first final verdict, a "Timeout" failure after ``deadline_seconds``, or None if
    ``cancel`` was set. Errors of a watch (cluster unreachable, refused) are raised here.
    """
    events: queue.SimpleQueue[tuple[str, WatchEvent | BaseException]] = queue.SimpleQueue()
    caches: dict[str, dict[str, Obj]] = {key: {} for key in watches}
    listed: set[str] = set()

    def pump(key: str, watch: ObjectWatch) -> None:
        try:
            for event in watch:
                events.put((key, event))
        except BaseException as exc:
            if not watch.closed:
                events.put((key, exc))

    threads = [
        threading.Thread(target=pump, args=(key, w), name=f"watch-{key}", daemon=True)
        for key, w in watches.items()
    ]
    for thread in threads:
        thread.start()
    deadline = None if deadline_seconds is None else clock() + deadline_seconds
    try:
        while True:
            if cancel.is_set():
                return None
            wait = CANCEL_CHECK_INTERVAL_SECONDS
            if deadline is not None:
                remaining = deadline - clock()
                if remaining <= 0:
                    return Verdict(
                        Phase.FAILED, "Timeout", f"no verdict from the cluster within {deadline_seconds:.0f}s"
                    )
                wait = min(wait, remaining)
            try:
                key, event = events.get(timeout=wait)
            except queue.Empty:
                continue
            if isinstance(event, BaseException):
                raise event
            cache = caches[key]
            if event.type == "LISTED":
                cache.clear()
                cache.update({_name(o): o for o in event.objects})
                listed.add(key)
            elif event.type == "DELETED":
                cache.pop(_name(event.object), None)
            else:
                cache[_name(event.object)] = event.object
            if len(listed) == len(watches):
                verdict = decide(caches)
                if verdict.done:
                    return verdict
    finally:
        for watch in watches.values():
            watch.close()
        for thread in threads:
            thread.join(WATCH_THREAD_JOIN_SECONDS)


# ------------------------------------------------------------------------------------ the backend


@dataclass
class _ServiceRollout:
    previous_template: Obj | None  # None: the Deployment is new (rollback deletes it)
    created_service: bool = False
    created_ingress: bool = False


@dataclass
class ObservedObjects:
    """What this pipeline had in the namespace when the deployment started (one list per kind)."""

    by_kind: dict[str, dict[str, Obj]] = field(default_factory=dict)

    def get(self, kind: str, name: str) -> Obj | None:
        return self.by_kind.get(kind, {}).get(name)

    def all(self) -> list[Obj]:
        return [obj for objs in self.by_kind.values() for obj in objs.values()]


class ClusterBackend:
    """Runs one stage on the cluster and waits for its verdict (the executor's ``Backend``)."""

    def __init__(
        self,
        cluster: Cluster,
        pipeline: Pipeline,
        context: DeployContext,
        *,
        observed: ObservedObjects,
        config_dir: str = "",
        smoke_tests: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.cluster = cluster
        self.pipeline = pipeline
        self.context = context
        self.namespace = render.target_namespace(pipeline, context)
        self.target = f"cluster {cluster.server}"
        self.observed = observed
        self.config_dir = config_dir
        self.smoke_tests = dict(smoke_tests or {})
        self.redactor = redactor or Redactor()
        self.clock = clock
        self.created: list[Obj] = []  # objects this run created or replaced (for pruning)
        self._rollouts: dict[str, _ServiceRollout] = {}
        self._failures: list[StageResult] = []
        self._lock = threading.Lock()

    # --- executor protocol ------------------------------------------------------------------
    def run_stage(self, stage: Stage, *, cancel: threading.Event) -> StageResult:
        started = self.clock()
        base = StageResult(stage=stage.name, kind=stage.kind, status=StageStatus.RUNNING, started_at=started)
        try:
            if stage.kind is StageKind.BATCH:
                result = self._run_batch(stage, base, cancel=cancel)
            else:
                result = self._run_service(stage, base, cancel=cancel)
        except (ClusterAuthError, ClusterUnreachable):
            raise
        except ClusterError as exc:  # the API refused this stage's object (e.g. 422 Invalid)
            result = base.evolve(
                status=StageStatus.FAILED, reason=exc.reason or "Rejected", message=self._clean(str(exc))
            )
        result = result.evolve(finished_at=self.clock())
        if result.status is StageStatus.FAILED:
            with self._lock:
                self._failures.append(result)
        return result

    def rollback_stage(self, stage: Stage, result: StageResult) -> StageResult:
        rollout = self._rollouts.get(stage.k8s_name)
        if rollout is None:
            return result
        name = render.service_name(stage)
        if rollout.previous_template is None:
            # Nothing served before this deployment: remove what it created rather than leave it failing.
            self.cluster.delete_object(DEPLOYMENT, name, namespace=self.namespace)
            if rollout.created_ingress:
                self.cluster.delete_object(INGRESS, name, namespace=self.namespace)
            if rollout.created_service:
                self.cluster.delete_object(SERVICE, name, namespace=self.namespace)
            note = "the new Deployment was removed (no previous revision existed)"
        else:
            patch = [
                {"op": "replace", "path": "/spec/template", "value": rollout.previous_template},
                {
                    "op": "add",
                    "path": "/metadata/annotations/" + ANNOTATION_ROLLED_BACK_FROM.replace("/", "~1"),
                    "value": self.context.deployment_id,
                },
            ]
            self.cluster.patch_object(
                DEPLOYMENT,
                name,
                patch,
                namespace=self.namespace,
                patch_type="application/json-patch+json",
            )
            note = "rolled back to the previous revision, whose pods kept serving throughout"
        message = f"{result.message}; {note}" if result.message else note
        return result.evolve(rolled_back=True, message=message)

    def finish(self, pipeline: Pipeline, result: DeploymentResult) -> DeploymentResult:
        result = replace(result, namespace=self.namespace)
        if not result.succeeded:
            return result
        desired = render.render_objects(pipeline, self.context, config_dir=self.config_dir)
        plan = build_prune_plan(
            desired, [*self.observed.all(), *self.created], pipeline_label=render.pipeline_label(pipeline)
        )
        pruned: list[str] = []
        try:
            for kind, name in plan:
                if self.cluster.delete_object(_KIND_BY_NAME[kind], name, namespace=self.namespace):
                    pruned.append(f"{kind}/{name}")
        except ClusterError as exc:
            return replace(result, message=f"pruning stopped: {exc}")
        return replace(result, message=f"pruned {', '.join(pruned)}" if pruned else result.message)

    # --- batch --------------------------------------------------------------------------------
    def _run_batch(self, stage: Stage, base: StageResult, *, cancel: threading.Event) -> StageResult:
        manifest = self._render_job(stage)
        name = _name(manifest)
        created = self.cluster.create_object(manifest)
        with self._lock:
            self.created.append(created)
        pod_labels = (manifest["spec"]["template"]["metadata"] or {}).get("labels") or {}
        pod_selector = build_label_selector(
            {k: pod_labels[k] for k in (render.LABEL_PART_OF, render.LABEL_NAME, render.LABEL_DEPLOYMENT)}
        )
        watches = {
            "job": self.cluster.watch_objects(
                JOB, namespace=self.namespace, field_selector=f"metadata.name={name}"
            ),
            "pods": self.cluster.watch_objects(POD, namespace=self.namespace, label_selector=pod_selector),
        }
        last: dict[str, Caches] = {}

        def decide(caches: Caches) -> Verdict:
            last["caches"] = caches
            job = caches["job"].get(name)
            if job is None:
                return Verdict(Phase.FAILED, "JobDeleted", f"Job {name} was deleted while it ran")
            return classify_job(job, list(caches["pods"].values()))

        batch = stage.batch
        deadline = render.job_deadline_seconds(batch) if batch else None
        verdict = wait_for_verdict(
            watches,
            decide,
            cancel=cancel,
            deadline_seconds=None if deadline is None else deadline + CLIENT_DEADLINE_GRACE_SECONDS,
        )
        pods = list((last.get("caches") or {}).get("pods", {}).values())
        if verdict is None:
            self.cluster.delete_object(JOB, name, namespace=self.namespace)
            return base.evolve(
                status=StageStatus.CANCELLED,
                reason="Cancelled",
                message=f"cancelled while Job {name} was running; the Job was deleted",
            )
        if verdict.phase is Phase.SUCCEEDED:
            return base.evolve(status=StageStatus.SUCCEEDED, attempts=verdict.attempts)
        events, logs = self._gather_failure_details([name], pods, verdict)
        message = verdict.message
        job_still_active = verdict.reason not in ("BackoffLimitExceeded", "DeadlineExceeded", "JobDeleted")
        if job_still_active:
            # Failed fast (image, config, scheduling): stop the Job so it can't start later unseen.
            self.cluster.delete_object(JOB, name, namespace=self.namespace)
            message += f"; Job {name} was deleted so it cannot start later"
        return base.evolve(
            status=StageStatus.FAILED,
            attempts=verdict.attempts,
            reason=verdict.reason,
            message=self._clean(message),
            events=events,
            logs=logs,
        )

    def _render_job(self, stage: Stage) -> Obj:
        in_dag = any(s.name == stage.name for s in self.pipeline.dag_stages)
        if stage.name == self.pipeline.run_on_failure and not in_dag:
            manifest = render.render_job(
                stage,
                self.pipeline,
                self.context,
                config_dir=self.config_dir,
                extra_env={"EXCEPTION_MESSAGE": self._failure_summary()},
            )
        else:
            manifest = render.render_job(stage, self.pipeline, self.context, config_dir=self.config_dir)
        return manifest

    def _failure_summary(self) -> str:
        with self._lock:
            failures = list(self._failures)
        return "; ".join(f"stage {r.stage} failed: {r.reason or 'failed'}: {r.message}" for r in failures)

    # --- service ------------------------------------------------------------------------------
    def _run_service(self, stage: Stage, base: StageResult, *, cancel: threading.Event) -> StageResult:
        deployment = render.render_deployment(stage, self.pipeline, self.context, config_dir=self.config_dir)
        name = _name(deployment)
        existing = self.observed.get("Deployment", name)
        rollout = _ServiceRollout(previous_template=(existing or {}).get("spec", {}).get("template"))
        applied = self._apply(deployment, existing)
        self._rollouts[stage.k8s_name] = rollout
        generation = int((applied.get("metadata") or {}).get("generation") or 0)
        selector = build_label_selector(render.selector_labels(self.pipeline, stage))
        watches = {
            "deployment": self.cluster.watch_objects(
                DEPLOYMENT, namespace=self.namespace, field_selector=f"metadata.name={name}"
            ),
            "pods": self.cluster.watch_objects(POD, namespace=self.namespace, label_selector=selector),
        }
        last: dict[str, Caches] = {}

        def decide(caches: Caches) -> Verdict:
            last["caches"] = caches
            current = caches["deployment"].get(name)
            if current is None:
                return Verdict(
                    Phase.FAILED, "DeploymentDeleted", f"Deployment {name} was deleted during its rollout"
                )
            if int((current.get("metadata") or {}).get("generation") or 0) < generation:
                return Verdict(Phase.RUNNING)  # an older state of the object, from before our update
            return classify_deployment(current, list(caches["pods"].values()))

        service_settings = stage.service
        assert service_settings is not None
        verdict = wait_for_verdict(
            watches,
            decide,
            cancel=cancel,
            deadline_seconds=render.progress_deadline_seconds(service_settings)
            + CLIENT_DEADLINE_GRACE_SECONDS,
        )
        pods = list((last.get("caches") or {}).get("pods", {}).values())
        if verdict is None:
            return base.evolve(
                status=StageStatus.CANCELLED,
                reason="Cancelled",
                message=f"cancelled during the rollout of Deployment {name}; it was not rolled back and may "
                "still complete (the previous revision serves until the new pods are ready)",
            )
        if verdict.phase is Phase.FAILED:
            events, logs = self._gather_failure_details([name], pods, verdict)
            return base.evolve(
                status=StageStatus.FAILED,
                reason=verdict.reason,
                message=self._clean(verdict.message),
                events=events,
                logs=logs,
            )
        service = render.render_service(stage, self.pipeline, self.context)
        existing_service = self.observed.get("Service", name)
        self._apply(service, existing_service)
        rollout.created_service = existing_service is None
        ingress_path = ""
        if service_settings.ingress:
            ingress = render.render_ingress(stage, self.pipeline, self.context)
            existing_ingress = self.observed.get("Ingress", name)
            self._apply(ingress, existing_ingress)
            rollout.created_ingress = existing_ingress is None
            ingress_path = render.ingress_path(self.namespace, stage)
        result = base.evolve(
            status=StageStatus.SUCCEEDED,
            url=render.service_url(stage, self.namespace),
            ingress_path=ingress_path,
        )
        smoke_path = self.smoke_tests.get(stage.name)
        if smoke_path is not None:
            status, text = self.cluster.fetch_service_proxy(
                render.service_name(stage), service_settings.port, smoke_path, namespace=self.namespace
            )
            if not 200 <= status < 300:
                return result.evolve(
                    status=StageStatus.FAILED,
                    reason="SmokeTestFailed",
                    message=self._clean(
                        f"GET {smoke_path} through the API server's service proxy answered {status}: {text}"
                    ),
                )
        return result

    # --- shared -------------------------------------------------------------------------------
    def _apply(self, manifest: Obj, existing: Obj | None) -> Obj:
        """Create, or replace (PUT) so that fields no longer rendered really go away."""
        kind, name = kind_of(manifest), _name(manifest)
        if existing is None:
            try:
                applied = self.cluster.create_object(manifest)
            except ClusterConflict:
                existing = self.cluster.read_object(kind, name, namespace=self.namespace) or {}
                applied = self.cluster.replace_object(build_replacement(manifest, existing))
        else:
            try:
                applied = self.cluster.replace_object(build_replacement(manifest, existing))
            except ClusterConflict:  # changed since we listed it: once more from its current version
                existing = self.cluster.read_object(kind, name, namespace=self.namespace) or {}
                applied = self.cluster.replace_object(build_replacement(manifest, existing))
        with self._lock:
            self.created.append(applied)
        return applied

    def _gather_failure_details(
        self, owner_names: Sequence[str], pods: Sequence[Obj], verdict: Verdict
    ) -> tuple[tuple[EventRecord, ...], dict[str, tuple[str, ...]]]:
        """Related Events and the last lines of every container of the failed pods (init included)."""
        by_name = {_name(p): p for p in pods}
        problem = [by_name[n] for n in verdict.problem_pods if n in by_name][:LOG_PODS_MAX]
        # Events and logs only explain a failure: a role without them (403) or an API hiccup must not
        # stop the rollback that comes next. Only a cluster that is gone stops everything.
        unavailable: tuple[EventRecord, ...] = ()
        try:
            listed = self.cluster.read_objects(EVENT, namespace=self.namespace).items
        except ClusterUnreachable:
            raise
        except ClusterError as exc:
            listed = ()
            unavailable = (
                EventRecord(reason="EventsUnavailable", message=self._clean(str(exc)), type="Warning"),
            )
        related = [*owner_names, *by_name]
        owned_sets = [
            _name(o)
            for o in listed
            if (o.get("involvedObject") or {}).get("kind") == "ReplicaSet"
            and any(
                str((o.get("involvedObject") or {}).get("name", "")).startswith(f"{n}-") for n in owner_names
            )
        ]
        events = unavailable + tuple(
            replace(e, message=self._clean(e.message)) for e in select_events(listed, [*related, *owned_sets])
        )
        logs: dict[str, tuple[str, ...]] = {}
        for pod in problem:
            for container, previous in select_log_containers(pod):
                lines = self._read_log(_name(pod), container, previous)
                logs[f"{_name(pod)}/{container}"] = tuple(self._clean(line) for line in lines)
        return events, logs

    def _read_log(self, pod: str, container: str, previous: bool) -> list[str]:
        for attempt_previous in (previous, False) if previous else (False,):
            try:
                return self.cluster.read_pod_log(
                    pod,
                    namespace=self.namespace,
                    container=container,
                    tail_lines=LOG_TAIL_LINES,
                    previous=attempt_previous,
                )
            except ClusterUnreachable:
                raise
            except ClusterError as exc:  # forbidden (pods/log not granted), gone, not started yet
                error = exc
        return [f"(logs unavailable: {error})"]

    def _clean(self, text: str) -> str:
        return self.redactor.redact(text)


_KIND_BY_NAME: Mapping[str, Kind] = {k.kind: k for k in PRUNABLE_KINDS}


# ------------------------------------------------------------------------------------ deploy


def read_observed_objects(cluster: Cluster, pipeline: Pipeline, namespace: str) -> ObservedObjects:
    """One list per kind of everything this pipeline owns in ``namespace``."""
    selector = build_owner_selector(pipeline)
    observed = ObservedObjects()
    for kind in PRUNABLE_KINDS:
        listed = cluster.read_objects(kind, namespace=namespace, label_selector=selector)
        observed.by_kind[kind.kind] = {_name(o): o for o in listed.items}
    return observed


@dataclass(frozen=True)
class _PreparedSecrets:
    manifests: tuple[Obj, ...]  # to create or replace in the target namespace
    existing: Mapping[str, Obj]  # secrets already in the namespace, by name


def prepare_secrets(
    cluster: Cluster, pipeline: Pipeline, namespace: str, secrets: SecretSupply, *, namespace_exists: bool
) -> _PreparedSecrets:
    """Check every key a stage needs exists (supplied, in the namespace, or in Bodywork's store) and
    build the Secrets to write. Raises MissingSecrets with the full list; creates nothing."""
    needed = build_needed_keys(pipeline)
    group = secrets.group or pipeline.secrets_group or pipeline.name
    names = sorted({ref.secret for ref in needed} | set(secrets.names))
    existing: dict[str, Obj] = {}
    if namespace_exists:
        for name in names:
            found = cluster.read_object(SECRET, name, namespace=namespace)
            if found is not None:
                existing[name] = found
    in_namespace = {name: build_secret_keys(obj) for name, obj in existing.items()}
    plan = build_secret_plan(needed, secrets, in_namespace=in_namespace, in_store={}, group=group)
    store: dict[str, Obj] = {}
    if plan.missing:
        for secret_name in sorted({ref.secret for ref in plan.missing}):
            store_name = build_store_secret_name(group, secret_name)
            try:
                found = cluster.read_object(SECRET, store_name, namespace=BODYWORK_SECRETS_NAMESPACE)
            except ClusterAuthError:
                found = None  # no access to Bodywork's store: those keys simply aren't available
            if found is not None:
                store[store_name] = found
        plan = build_secret_plan(
            needed,
            secrets,
            in_namespace=in_namespace,
            in_store={name: build_secret_keys(obj) for name, obj in store.items()},
            group=group,
        )
    if plan.missing:
        raise MissingSecrets(namespace, plan.missing)
    manifests: list[Obj] = []
    for name in plan.copy_from_store:
        source = store[plan.store_names[name]]
        manifest = render.render_secret(name, {}, namespace=namespace, group=group)
        manifest.pop("stringData", None)
        manifest["data"] = {**((existing.get(name) or {}).get("data") or {}), **(source.get("data") or {})}
        supplied = secrets.get(name)
        if supplied is not None:
            manifest["stringData"] = {k: v.reveal() for k, v in supplied.values.items()}
        manifests.append(manifest)
    for supplied in secrets.secrets:
        if supplied.name in plan.copy_from_store:
            continue
        manifest = render.render_secret(
            supplied.name,
            {k: v.reveal() for k, v in supplied.values.items()},
            namespace=namespace,
            group=secrets.group or pipeline.secrets_group,
        )
        # Keys of an existing secret that are not supplied now are kept (as Bodywork's update did).
        kept = (existing.get(supplied.name) or {}).get("data") or {}
        if kept:
            manifest["data"] = {k: v for k, v in kept.items() if k not in supplied.values}
        manifests.append(manifest)
    for manifest in manifests:
        if manifest["metadata"]["name"] not in existing:  # ours: `delete` may remove it
            manifest["metadata"]["labels"][render.LABEL_PART_OF] = render.pipeline_label(pipeline)
        else:  # someone else's secret that we update: keep its labels, add ours
            old_labels = (existing[manifest["metadata"]["name"]].get("metadata") or {}).get("labels") or {}
            manifest["metadata"]["labels"] = {**old_labels, **manifest["metadata"]["labels"]}
    return _PreparedSecrets(tuple(manifests), existing)


def deploy_pipeline(
    pipeline: Pipeline,
    context: DeployContext,
    *,
    target: KubeTarget,
    secrets: SecretSupply | None = None,
    dry_run: bool = False,
    smoke_tests: Mapping[str, str] | None = None,
    report: Reporter = _ignore,
    cancel: threading.Event | None = None,
    config_dir: str = "",
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> DeploymentResult:
    """Deploy ``pipeline`` to the cluster ``target`` names; the result says whether it succeeded.

    Raises ``MissingSecrets`` (nothing created), ``InputError`` for a bad kubeconfig, and
    ``ClusterAuthError`` / ``ClusterUnreachable`` / ``ClusterError`` when the cluster refuses or
    vanishes. A stage that fails is a result, not an exception.
    """
    cluster = connect_cluster(target, environ=environ)
    try:
        return run_deployment(
            cluster,
            pipeline,
            context,
            secrets=secrets or SecretSupply(),
            dry_run=dry_run,
            smoke_tests=smoke_tests,
            report=report,
            cancel=cancel or threading.Event(),
            config_dir=config_dir,
            clock=clock,
        )
    finally:
        cluster.close()


def run_deployment(
    cluster: Cluster,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    secrets: SecretSupply,
    dry_run: bool = False,
    smoke_tests: Mapping[str, str] | None = None,
    report: Reporter = _ignore,
    cancel: threading.Event,
    config_dir: str = "",
    clock: Callable[[], float] = time.time,
) -> DeploymentResult:
    """``deploy_pipeline`` on an already connected cluster."""
    started = clock()
    entropy = hashlib.sha256(f"{time.time_ns()}:{threading.get_ident()}".encode()).hexdigest()[:6]
    context = build_unique_context(context, now_seconds=started, entropy=entropy)
    namespace = render.target_namespace(pipeline, context)
    objects = render.render_objects(pipeline, context, config_dir=config_dir)
    namespace_object = cluster.read_object(NAMESPACE, namespace)
    # A namespace still being deleted (`delete` just before this run) refuses new objects: a deploy
    # waits for it to go; a dry run checks what it can and says a deploy would wait.
    terminating = namespace_object is not None and is_terminating(namespace_object)
    if terminating and not dry_run:
        report(
            Progress(
                ProgressKind.WAITING,
                0,
                (),
                detail=f"namespace {namespace} is being deleted; waiting for it to go before deploying",
            )
        )
        if not wait_for_namespace_deletion(cluster, namespace, cancel=cancel):
            return _cancelled_before_anything_applied(
                pipeline,
                namespace,
                context,
                f"cluster {cluster.server}",
                started,
                clock(),
                f"cancelled while waiting for namespace {namespace} to finish deleting; nothing was applied",
            )
        namespace_object = cluster.read_object(NAMESPACE, namespace)  # someone may have re-created it
        terminating = False
    if terminating:
        namespace_object = None
    prepared = prepare_secrets(
        cluster, pipeline, namespace, secrets, namespace_exists=namespace_object is not None
    )
    redactor = Redactor(secrets.all_values())
    if dry_run:
        return _dry_run(
            cluster,
            pipeline,
            context,
            objects,
            prepared,
            namespace_object,
            started,
            clock,
            redactor,
            namespace_terminating=terminating,
        )

    if namespace_object is None:
        cluster.create_object(build_namespace_manifest(objects[0], pipeline))
    observed = (
        read_observed_objects(cluster, pipeline, namespace)
        if namespace_object is not None
        else ObservedObjects()
    )
    for manifest in prepared.manifests:
        existing = prepared.existing.get(manifest["metadata"]["name"])
        if existing is None:
            try:
                cluster.create_object(manifest)
                continue
            except ClusterConflict:
                existing = (
                    cluster.read_object(SECRET, manifest["metadata"]["name"], namespace=namespace) or {}
                )
        cluster.replace_object(build_replacement(manifest, existing))
    backend = ClusterBackend(
        cluster,
        pipeline,
        context,
        observed=observed,
        config_dir=config_dir,
        smoke_tests=smoke_tests,
        redactor=redactor,
        clock=clock,
    )
    return execute(pipeline, backend, report=report, cancel=cancel, clock=clock, commit=context.commit)


def is_terminating(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def wait_for_namespace_deletion(
    cluster: Cluster,
    namespace: str,
    *,
    cancel: threading.Event,
    timeout_seconds: float = NAMESPACE_TERMINATING_WAIT_SECONDS,
) -> bool:
    """Wait until ``namespace`` is gone (or was re-created by someone else): True; False if cancelled.

    Raises ``ClusterError`` if it is still terminating after ``timeout_seconds``. Nothing has been
    applied when this returns False or raises.
    """

    def decide(caches: Caches) -> Verdict:
        current = caches["namespace"].get(namespace)
        done = current is None or not is_terminating(current)
        return Verdict(Phase.SUCCEEDED) if done else Verdict(Phase.RUNNING)

    verb = "watch"
    try:
        watch = cluster.watch_objects(NAMESPACE, field_selector=f"metadata.name={namespace}")
        verdict = wait_for_verdict(
            {"namespace": watch}, decide, cancel=cancel, deadline_seconds=timeout_seconds
        )
    except ClusterAuthError:
        # Deploying needs only get/create on namespaces; a user without list/watch still gets the
        # wait, by reading the namespace now and then (cancel-aware).
        verb = "get"
        verdict = _poll_namespace_deletion(cluster, namespace, decide, cancel, timeout_seconds)
    if verdict is None:
        return False
    if verdict.phase is Phase.FAILED:
        raise ClusterError(
            f"namespace {namespace} is still being deleted after {timeout_seconds:.0f}s; nothing was "
            f"applied. See what holds it with `kubectl get namespace {namespace} -o yaml` (finalizers, "
            "conditions), then deploy again",
            verb=verb,
            resource="namespaces",
            name=namespace,
        )
    return True


def _poll_namespace_deletion(
    cluster: Cluster,
    namespace: str,
    decide: Callable[[Caches], Verdict],
    cancel: threading.Event,
    timeout_seconds: float,
) -> Verdict | None:
    deadline = time.monotonic() + timeout_seconds
    while True:
        current = cluster.read_object(NAMESPACE, namespace)
        verdict = decide({"namespace": {namespace: current} if current is not None else {}})
        if verdict.done:
            return verdict
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return Verdict(Phase.FAILED, "Timeout")
        if cancel.wait(min(NAMESPACE_POLL_SECONDS, remaining)):
            return None


def _cancelled_before_anything_applied(
    pipeline: Pipeline,
    namespace: str,
    context: DeployContext,
    target: str,
    started: float,
    finished: float,
    message: str,
) -> DeploymentResult:
    return DeploymentResult(
        pipeline=pipeline.name,
        namespace=namespace,
        steps=pipeline.steps,
        stages=tuple(
            StageResult(stage=stage.name, kind=stage.kind, status=StageStatus.CANCELLED)
            for stage in pipeline.dag_stages
        ),
        status=DeploymentStatus.CANCELLED,
        started_at=started,
        finished_at=finished,
        commit=context.commit,
        target=target,
        message=message,
    )


def build_namespace_manifest(rendered: Mapping[str, Any], pipeline: Pipeline) -> Obj:
    """The rendered Namespace, marked as created by this tool for this pipeline (``delete`` checks it)."""
    manifest: Obj = {**rendered, "metadata": dict(rendered["metadata"])}
    manifest["metadata"]["labels"] = {
        **(manifest["metadata"].get("labels") or {}),
        render.LABEL_PART_OF: render.pipeline_label(pipeline),
    }
    manifest["metadata"]["annotations"] = {
        **(manifest["metadata"].get("annotations") or {}),
        ANNOTATION_NAMESPACE_CREATED_FOR: render.pipeline_label(pipeline),
    }
    return manifest


def _dry_run(
    cluster: Cluster,
    pipeline: Pipeline,
    context: DeployContext,
    objects: Sequence[Obj],
    prepared: _PreparedSecrets,
    namespace_object: Obj | None,
    started: float,
    clock: Callable[[], float],
    redactor: Redactor,
    *,
    namespace_terminating: bool = False,
) -> DeploymentResult:
    """Send every object with dryRun=All: the API server validates and admits it, nothing is stored.

    Objects of a namespace that does not exist yet (or is being deleted) can only be checked once it
    does; the API server refuses them (404, or 403 NamespaceTerminating), which is reported as "not
    checked", not as a failure.
    """
    namespace = render.target_namespace(pipeline, context)
    observed = (
        read_observed_objects(cluster, pipeline, namespace)
        if namespace_object is not None
        else ObservedObjects()
    )
    unchecked = 0
    if namespace_object is None and not namespace_terminating:
        cluster.create_object(build_namespace_manifest(objects[0], pipeline), dry_run=True)

    def send(manifest: Obj, existing: Obj | None) -> bool:
        nonlocal unchecked
        try:
            if existing is None:
                cluster.create_object(manifest, dry_run=True)
            else:
                cluster.replace_object(build_replacement(manifest, existing), dry_run=True)
        except ClusterError as exc:
            refused_for_namespace = exc.status == 404 or exc.reason == "NamespaceTerminating"
            if refused_for_namespace and namespace_object is None:
                unchecked += 1
                return True
            raise
        return True

    for manifest in prepared.manifests:
        send(manifest, prepared.existing.get(manifest["metadata"]["name"]))
    results: list[StageResult] = []
    failed = False
    for stage in pipeline.dag_stages:
        stage_objects = render.render_stage_objects(stage, pipeline, context, config_dir="")
        names = [f"{o['kind']}/{o['metadata']['name']}" for o in stage_objects]
        try:
            for manifest in stage_objects:
                send(manifest, observed.get(str(manifest["kind"]), _name(manifest)))
            results.append(
                StageResult(
                    stage=stage.name,
                    kind=stage.kind,
                    status=StageStatus.PENDING,
                    message="dry run: accepted by the API server (dryRun=All): " + ", ".join(names),
                )
            )
        except (ClusterAuthError, ClusterUnreachable):
            raise
        except ClusterError as exc:
            failed = True
            results.append(
                StageResult(
                    stage=stage.name,
                    kind=stage.kind,
                    status=StageStatus.FAILED,
                    reason=exc.reason or "Rejected",
                    message=redactor.redact(str(exc)),
                )
            )
    note = f"dry run: nothing was created ({len(objects)} objects sent with dryRun=All"
    if namespace_terminating:
        note += (
            f"; {unchecked} could not be checked: namespace {namespace} is being deleted, and a deploy "
            "would first wait for it to go)"
        )
    elif unchecked:
        note += f"; {unchecked} could not be checked until namespace {namespace} exists)"
    else:
        note += ")"
    return DeploymentResult(
        pipeline=pipeline.name,
        namespace=namespace,
        steps=pipeline.steps,
        stages=tuple(results),
        status=DeploymentStatus.FAILED if failed else DeploymentStatus.SUCCEEDED,
        started_at=started,
        finished_at=clock(),
        commit=context.commit,
        target=f"cluster {cluster.server} (dry run)",
        message=note,
        dry_run=True,
    )


# ------------------------------------------------------------------------------- status and delete


@dataclass(frozen=True)
class StageState:
    stage: str  # the user's stage name when known (annotation), else its Kubernetes name
    kind: str  # "batch" or "service"
    status: str  # "running" / "succeeded" / "failed"
    object: str  # "Job/train-1a2b3c" or "Deployment/serve"
    commit: str = ""
    reason: str = ""
    message: str = ""
    url: str = ""
    ingress_path: str = ""
    attempts: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class PipelineState:
    pipeline: str
    namespace: str
    namespace_exists: bool
    namespace_created_by_tool: bool
    stages: tuple[StageState, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "pipeline": self.pipeline,
            "namespace": self.namespace,
            "namespace_exists": self.namespace_exists,
            "namespace_created_by_tool": self.namespace_created_by_tool,
            "stages": [s.to_json() for s in self.stages],
        }


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


def _namespace_for(pipeline: Pipeline, namespace: str) -> str:
    return render.target_namespace(pipeline, DeployContext(repository_url="", commit="", namespace=namespace))


def _created_by_tool(namespace_object: Obj | None, pipeline: Pipeline) -> bool:
    meta = (namespace_object or {}).get("metadata") or {}
    return (meta.get("labels") or {}).get(render.LABEL_MANAGED_BY) == render.MANAGED_BY and (
        meta.get("annotations") or {}
    ).get(ANNOTATION_NAMESPACE_CREATED_FOR) == render.pipeline_label(pipeline)


def read_pipeline_state(cluster: Cluster, pipeline: Pipeline, *, namespace: str = "") -> PipelineState:
    namespace = _namespace_for(pipeline, namespace)
    namespace_object = cluster.read_object(NAMESPACE, namespace)
    if namespace_object is None:
        return PipelineState(pipeline.name, namespace, False, False)
    observed = read_observed_objects(cluster, pipeline, namespace)
    pods = cluster.read_objects(POD, namespace=namespace, label_selector=build_owner_selector(pipeline)).items
    states: list[StageState] = []
    for deployment in sorted(observed.by_kind["Deployment"].values(), key=_name):
        verdict = classify_deployment(deployment, pods)
        name = _name(deployment)
        service = observed.get("Service", name)
        ports = ((service or {}).get("spec") or {}).get("ports") or []
        url = f"http://{name}.{namespace}.svc.cluster.local:{ports[0]['port']}" if ports else ""
        ingress = observed.get("Ingress", name)
        states.append(_state(deployment, "service", verdict, url=url, ingress=ingress))
    latest_jobs: dict[str, Obj] = {}
    for job in observed.by_kind["Job"].values():
        stage = str(((job.get("metadata") or {}).get("labels") or {}).get(render.LABEL_NAME, ""))
        stamp = str(job["metadata"].get("creationTimestamp") or "")
        if stage not in latest_jobs or stamp >= str(
            latest_jobs[stage]["metadata"].get("creationTimestamp") or ""
        ):
            latest_jobs[stage] = job
    for _, job in sorted(latest_jobs.items()):
        states.append(_state(job, "batch", classify_job(job, pods)))
    return PipelineState(
        pipeline.name, namespace, True, _created_by_tool(namespace_object, pipeline), tuple(states)
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
        stage=str(annotations.get(render.ANNOTATION_STAGE) or labels.get(render.LABEL_NAME) or _name(obj)),
        kind=kind,
        status=verdict.phase.value,
        object=f"{obj.get('kind')}/{_name(obj)}",
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
    try:
        return read_pipeline_state(cluster, pipeline, namespace=namespace)
    finally:
        cluster.close()


@dataclass(frozen=True)
class DeleteResult:
    pipeline: str
    namespace: str
    deleted: tuple[str, ...] = ()  # "Kind/name"
    namespace_deleted: bool = False
    message: str = ""
    dry_run: bool = False


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
    for kind in (*PRUNABLE_KINDS, SECRET):
        for obj in cluster.read_objects(kind, namespace=namespace, label_selector=managed).items:
            if is_owned(obj, label):
                ours.append((kind, _name(obj)))
            elif kind is not SECRET:
                others += 1
    deleted = []
    for kind, name in ours:
        if cluster.delete_object(kind, name, namespace=namespace, dry_run=dry_run):
            deleted.append(f"{kind.kind}/{name}")
    created_by_tool = _created_by_tool(namespace_object, pipeline)
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
) -> DeleteResult:
    """Remove what ``pipeline`` created (the ``delete`` command); its namespace only if this tool made it."""
    cluster = connect_cluster(target, environ=environ)
    try:
        return remove_pipeline(cluster, pipeline, namespace=namespace, dry_run=dry_run)
    finally:
        cluster.close()
