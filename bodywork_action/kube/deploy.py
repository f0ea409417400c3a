"""The cluster deploy engine: secrets, namespace, the stage objects, waiting by watching, rollback, pruning.

Shell. ``deploy_pipeline`` renders one ``Plan`` (``plan.py``: every object, before anything is
applied), checks that every secret key a stage needs exists *before* anything is created
(``secret_groups.py``), then hands the DAG to ``executor.execute`` with ``ClusterBackend``, which runs
one stage: the plan's Job for a batch stage, its Deployment (then Service and Ingress) for a service
stage, each watched to a verdict decided by ``verdicts.py``. A dry run sends the same plan with
dryRun=All; pruning keeps exactly the plan's objects.

All Kubernetes I/O goes through ``client.py``. Beyond what Bodywork 3.0 did: real retries, fail-fast
verdicts, rollback to the exact previous pod template, pruning that only ever touches objects
labelled as ours.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TypeVar

from bodywork_action import render
from bodywork_action.errors import (
    BodyworkActionError,
    ClusterAuthError,
    ClusterConflict,
    ClusterError,
    ClusterUnreachable,
    MissingSecrets,
)
from bodywork_action.executor import Progress, ProgressKind, execute
from bodywork_action.kube.client import (
    DEPLOYMENT,
    EVENT,
    INGRESS,
    JOB,
    KINDS,
    NAMESPACE,
    POD,
    SECRET,
    SERVICE,
    Cluster,
    ClusterOutage,
    KubeTarget,
    ObjectWatch,
    connect_cluster,
    kind_of,
)
from bodywork_action.kube.inventory import ObservedObjects, read_observed_objects
from bodywork_action.kube.lease import DEFAULT_LOCK_TIMEOUT_SECONDS, build_holder, hold_pipeline_lock
from bodywork_action.kube.pull_secrets import describe_missing_pull_secrets, find_missing_pull_secrets
from bodywork_action.kube.watch_hub import (
    WATCH_THREAD_JOIN_SECONDS,
    Caches,
    Feed,
    Mailbox,
    Outcome,
    WatchHub,
    follow_events,
    labelled,
    named,
)
from bodywork_action.model import DeployContext, Pipeline, Stage, StageKind
from bodywork_action.plan import Plan, render_plan
from bodywork_action.progress_events import StageProgress
from bodywork_action.reconcile import (
    ANNOTATION_ROLLED_BACK_FROM,
    Obj,
    build_label_selector,
    build_prune_plan,
    build_replacement,
    build_secret_keys,
    build_unique_context,
    is_owned,
    is_same_object,
    is_terminating,
    object_name,
    secret_values_of,
    select_log_containers,
)
from bodywork_action.redact import Redactor
from bodywork_action.results import (
    DeploymentResult,
    DeploymentStatus,
    EventRecord,
    StageResult,
    StageStatus,
)
from bodywork_action.rollback import build_restored_object
from bodywork_action.secret_groups import (
    BODYWORK_SECRETS_NAMESPACE,
    SecretSupply,
    build_needed_keys,
    build_secret_manifests,
    build_secret_plan,
    build_store_secret_name,
    secrets_group,
)
from bodywork_action.selection import EVERY_STAGE, StageSelection, select_stage_objects
from bodywork_action.verdicts import Phase, Verdict, classify_deployment, classify_job, select_events

Reporter = Callable[[Progress], None]

LOG_TAIL_LINES = 100  # per container of a failed pod
LOG_PODS_MAX = 3  # failed pods whose logs are fetched, per stage
# The cluster enforces activeDeadlineSeconds / progressDeadlineSeconds; this is our own backstop for a
# cluster that never reports (e.g. a Deployment controller that is down).
CLIENT_DEADLINE_GRACE_SECONDS = 60
# A namespace still being deleted (e.g. `delete` just before a redeploy) refuses new objects; we wait
# for it to go, up to this long, before applying anything.
NAMESPACE_TERMINATING_WAIT_SECONDS = 300
NAMESPACE_POLL_SECONDS = 2.0  # only without list/watch permission on namespaces
# Without a deploy time limit (the CLI), waiting for an API server that went away ends after this.
DEFAULT_DEPLOY_TIMEOUT_SECONDS = 3600
# Stages are not threads: each runs in stretches (create, then, after its verdict, read logs or send the
# smoke test) on this many workers, and waits in between as a subscription of the shared watches. So the
# writes in flight at once are bounded however wide a step is: that bounds the connections a wide step
# needs (client.CONNECTION_POOL_SIZE) and the burst the API server sees.
STAGE_WORKERS = 16


def _ignore(_: Progress) -> None:
    return None


@dataclass(frozen=True)
class _WaitFor:
    """What a running stage waits for, yielded by its run: a verdict from these feeds."""

    feeds: tuple[Feed, ...]
    decide: Callable[[Caches], Verdict]
    deadline_seconds: float | None
    must_see: str


T = TypeVar("T")
# A stage's run: yields each wait, is sent its verdict (None: cancelled), returns what it came to.
Run = Generator[_WaitFor, Verdict | None, T]


# ------------------------------------------------------------------------------------ waiting


def wait_for_verdict(
    watches: Mapping[str, ObjectWatch],
    decide: Callable[[Caches], Verdict],
    *,
    cancel: threading.Event,
    deadline_seconds: float | None,
    clock: Callable[[], float] = time.monotonic,
) -> Verdict | None:
    """``follow_events`` over watches of their own, each pumped by a thread, closed on return (for a
    single object outside the deployment's shared watches, e.g. a namespace being deleted)."""
    events: Mailbox = queue.SimpleQueue()

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
    try:
        return follow_events(
            events, list(watches), decide, cancel=cancel, deadline_seconds=deadline_seconds, clock=clock
        )
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
    # Each object this run wrote, as read before it did (None: it did not exist), by kind: what an
    # atomic rollback puts back, whatever this run changed in between.
    previous: dict[str, Obj | None] = field(default_factory=dict)


class ClusterBackend:
    """Runs one stage on the cluster and waits for its verdict (the executor's ``Backend``)."""

    def __init__(
        self,
        cluster: Cluster,
        plan: Plan,
        *,
        observed: ObservedObjects,
        smoke_tests: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        clock: Callable[[], float] = time.time,
        progress: StageProgress | None = None,
    ) -> None:
        self.cluster = cluster
        self.plan = plan
        self.pipeline = plan.pipeline
        self.context = plan.context
        self.namespace = plan.namespace
        self.target = f"cluster {cluster.server}"
        self.observed = observed
        self.smoke_tests = dict(smoke_tests or {})
        self.redactor = redactor or Redactor()
        self.clock = clock
        self.progress = progress or StageProgress(plan.pipeline, _ignore)  # phases, as they change
        self.created: list[Obj] = []  # objects this run created or replaced (for pruning)
        self.applied_before: list[str] = []  # namespace and secrets, written before the first stage
        self._rollouts: dict[str, _ServiceRollout] = {}
        self.atomic_rollbacks: list[StageResult] = []  # what an atomic rollback did, stage by stage
        self._failures: list[StageResult] = []
        self._lock = threading.Lock()
        self._workers = ThreadPoolExecutor(STAGE_WORKERS, thread_name_prefix="stage")
        # One watch per kind for the whole deployment, shared by every stage waiting (watch_hub.py).
        self.watches = WatchHub(
            cluster,
            namespace=plan.namespace,
            label_selector=build_label_selector({render.LABEL_PART_OF: render.pipeline_label(plan.pipeline)}),
            stage_label=render.LABEL_NAME,
        )

    def start_watching(self) -> None:
        """Open, before the first step, the shared watch of each kind the selected stages will wait on:
        their listings then overlap the first creates instead of preceding them."""
        stages = [s for s in self.pipeline.dag_stages if self.plan.selection.includes(s.name)]
        kinds = [POD]
        if any(stage.kind is StageKind.BATCH for stage in stages):
            kinds.append(JOB)
        if any(stage.kind is StageKind.SERVICE for stage in stages):
            kinds.append(DEPLOYMENT)
        self.watches.start(kinds)

    def close(self) -> None:
        """End the deployment's shared watches and workers (after the executor returned, rollbacks
        included)."""
        self.watches.close()
        self._workers.shutdown(wait=True)

    # --- executor protocol ------------------------------------------------------------------
    def start_stage(self, stage: Stage, *, cancel: threading.Event) -> Future[StageResult]:
        """Start ``stage``; its result comes in the future. No thread waits for it: its run proceeds
        in stretches on the workers, a subscription of the shared watches in between."""
        future: Future[StageResult] = Future()
        future.set_running_or_notify_cancel()
        self._resume(self._run_stage(stage), None, future, cancel)
        return future

    def _resume(
        self, run: Run[StageResult], outcome: Outcome, future: Future[StageResult], cancel: threading.Event
    ) -> None:
        """Run the stage's next stretch on a worker: from ``outcome`` (what its last wait came to) up to
        its next wait, which is subscribed to resume it in turn, or to its end, which settles ``future``."""

        def stretch() -> None:
            try:
                request = run.throw(outcome) if isinstance(outcome, BaseException) else run.send(outcome)
            except StopIteration as done:
                future.set_result(done.value)
                return
            except BaseException as exc:
                future.set_exception(exc)
                return
            try:
                self.watches.subscribe(
                    request.feeds,
                    request.decide,
                    lambda then: self._resume(run, then, future, cancel),
                    cancel=cancel,
                    deadline_seconds=request.deadline_seconds,
                    must_see=request.must_see,
                )
            except BaseException as exc:  # the watches are closed: the run hears why
                self._resume(run, exc, future, cancel)

        try:
            self._workers.submit(stretch)
        except RuntimeError as exc:  # the workers were shut down: the deployment is over
            run.close()
            future.set_exception(exc)

    def _wait_here(self, run: Run[T], cancel: threading.Event) -> T:
        """Drive ``run`` on this thread, blocking on each of its waits (rollbacks, outside any step)."""
        outcome: Outcome = None
        while True:
            try:
                request = run.throw(outcome) if isinstance(outcome, BaseException) else run.send(outcome)
            except StopIteration as done:
                return done.value  # type: ignore[no-any-return]
            try:
                outcome = self.watches.wait(
                    request.feeds,
                    request.decide,
                    cancel=cancel,
                    deadline_seconds=request.deadline_seconds,
                    must_see=request.must_see,
                )
            except BaseException as exc:
                outcome = exc

    def _run_stage(self, stage: Stage) -> Run[StageResult]:
        started = self.clock()
        base = StageResult(stage=stage.name, kind=stage.kind, status=StageStatus.RUNNING, started_at=started)
        try:
            if stage.kind is StageKind.BATCH:
                result = yield from self._run_batch(stage, base)
            else:
                result = yield from self._run_service(stage, base)
        except ClusterOutage as exc:  # the API server went away for longer than the deploy may wait
            result = base.evolve(
                status=StageStatus.FAILED, reason="APIUnavailable", message=self._clean(str(exc))
            )
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

    def rollback_stage(self, stage: Stage, result: StageResult, *, atomic: bool = False) -> StageResult:
        rollout = self._rollouts.get(stage.k8s_name)
        if rollout is None:
            return result
        if atomic:
            restored = self._roll_back_atomically(stage, result, rollout)
            with self._lock:
                self.atomic_rollbacks.append(restored)
            return restored
        try:
            return self._roll_back(stage, result, rollout)
        except ClusterOutage as exc:
            note = f"not rolled back: {exc}"
            return result.evolve(message=f"{result.message}; {note}" if result.message else note)

    def _roll_back(self, stage: Stage, result: StageResult, rollout: _ServiceRollout) -> StageResult:
        name = render.service_name(stage)
        self.progress.debug(f"{stage.name}: rolling back the failed rollout ({result.reason or 'failed'})")
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
        return result.evolve(
            rolled_back=True, rollback_removed=rollout.previous_template is None, message=message
        )

    def finish(self, pipeline: Pipeline, result: DeploymentResult) -> DeploymentResult:
        result = replace(result, namespace=self.namespace)
        if not result.succeeded:
            if any(stage.reason == "APIUnavailable" for stage in result.stages):
                return replace(result, message=f"{result.message}; {self.describe_applied(result)}")
            return result
        prune = build_prune_plan(
            self.plan.objects(),
            # A partial run prunes only among its own stages' objects: the others stay as they are.
            select_stage_objects([*self.observed.all(), *self.created], pipeline, self.plan.selection),
            pipeline_label=render.pipeline_label(pipeline),
        )
        pruned: list[str] = []
        try:
            for kind, name in prune:
                if self.cluster.delete_object(KINDS[kind], name, namespace=self.namespace):
                    pruned.append(f"{kind}/{name}")
        except ClusterError as exc:
            return replace(result, message=f"pruning stopped: {exc}")
        return replace(result, message=f"pruned {', '.join(pruned)}" if pruned else result.message)

    def describe_applied(self, result: DeploymentResult | None = None) -> str:
        """What this run applied to the cluster, and which stages it never got to."""
        with self._lock:
            applied = [f"{o.get('kind')}/{object_name(o)}" for o in self.created]
        done = [*self.applied_before, *applied]
        text = f"applied: {', '.join(done)}" if done else "nothing was applied"
        if result is not None:
            untouched = [
                s.stage for s in result.stages if s.status in (StageStatus.SKIPPED, StageStatus.PENDING)
            ]
            if untouched:
                text += f"; not applied: stage(s) {', '.join(untouched)}"
        return text

    # --- batch --------------------------------------------------------------------------------
    def _run_batch(self, stage: Stage, base: StageResult) -> Run[StageResult]:
        manifest = self._planned_job(stage)
        name = object_name(manifest)
        self.watches.start((JOB, POD))
        created = self.cluster.create_object(manifest, is_ours=lambda found: is_same_object(manifest, found))
        with self._lock:
            self.created.append(created)
        pod_labels = (manifest["spec"]["template"]["metadata"] or {}).get("labels") or {}
        feeds = (
            Feed("job", JOB, stage.k8s_name, named(name)),
            Feed(
                "pods",
                POD,
                stage.k8s_name,
                labelled(
                    {
                        k: pod_labels[k]
                        for k in (render.LABEL_PART_OF, render.LABEL_NAME, render.LABEL_DEPLOYMENT)
                    }
                ),
            ),
        )
        last: dict[str, Caches] = {}

        def decide(caches: Caches) -> Verdict:
            last["caches"] = caches
            job = caches["job"].get(name)
            if job is None:
                return Verdict(Phase.FAILED, "JobDeleted", f"Job {name} was deleted while it ran")
            pods = list(caches["pods"].values())
            self.progress.observe_job(stage, job, pods)
            verdict = classify_job(job, pods)
            self.progress.verdict(stage.name, verdict)
            return verdict

        batch = stage.batch
        deadline = render.job_wait_limit_seconds(batch) if batch else None
        verdict = yield _WaitFor(
            feeds,
            decide,
            deadline_seconds=None if deadline is None else deadline + CLIENT_DEADLINE_GRACE_SECONDS,
            must_see="job",  # just created: it may reach the shared watch after its listing
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

    def _planned_job(self, stage: Stage) -> Obj:
        job = self.plan.for_stage(stage.name).require("Job")
        if self.plan.failure_stage is not None and stage.name == self.plan.failure_stage.stage.name:
            return render.with_stage_env(job, {"EXCEPTION_MESSAGE": self._failure_summary()})
        return job

    def _failure_summary(self) -> str:
        with self._lock:
            failures = list(self._failures)
        return "; ".join(f"stage {r.stage} failed: {r.reason or 'failed'}: {r.message}" for r in failures)

    # --- service ------------------------------------------------------------------------------
    def _run_service(self, stage: Stage, base: StageResult) -> Run[StageResult]:
        planned = self.plan.for_stage(stage.name)
        deployment = planned.require("Deployment")
        name = object_name(deployment)
        existing = self.observed.get("Deployment", name)
        rollout = _ServiceRollout(
            previous_template=(existing or {}).get("spec", {}).get("template"),
            previous={"Deployment": existing},
        )
        self.watches.start((DEPLOYMENT, POD))
        applied = self._apply(deployment, existing)
        self._rollouts[stage.k8s_name] = rollout
        generation = int((applied.get("metadata") or {}).get("generation") or 0)
        service_settings = stage.service
        assert service_settings is not None
        verdict, pods = yield from self._wait_for_rollout(stage, name, generation)
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
        service = planned.require("Service")
        existing_service = self.observed.get("Service", name)
        rollout.previous["Service"] = existing_service
        self._apply(service, existing_service)
        rollout.created_service = existing_service is None
        ingress_path = ""
        ingress = planned.get("Ingress")
        if ingress is not None:
            existing_ingress = self.observed.get("Ingress", name)
            rollout.previous["Ingress"] = existing_ingress
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
            sent = time.monotonic()
            status, text = self.cluster.fetch_service_proxy(
                render.service_name(stage), service_settings.port, smoke_path, namespace=self.namespace
            )
            self.progress.smoke_test(stage.name, smoke_path, status, time.monotonic() - sent)
            if not 200 <= status < 300:
                return result.evolve(
                    status=StageStatus.FAILED,
                    reason="SmokeTestFailed",
                    message=self._clean(
                        f"GET {smoke_path} through the API server's service proxy answered {status}: {text}"
                    ),
                )
        return result

    def _wait_for_rollout(
        self, stage: Stage, name: str, generation: int
    ) -> Run[tuple[Verdict | None, list[Obj]]]:
        """Watch Deployment ``name`` (at ``generation`` or later) and its pods to a verdict, within the
        stage's progress deadline; also returns the pods last seen (for the failure's details)."""
        feeds = (
            Feed("deployment", DEPLOYMENT, stage.k8s_name, named(name)),
            Feed("pods", POD, stage.k8s_name, labelled(render.selector_labels(self.pipeline, stage))),
        )
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
            pods = list(caches["pods"].values())
            self.progress.observe_deployment(stage, current, pods)
            verdict = classify_deployment(current, pods)
            self.progress.verdict(stage.name, verdict)
            return verdict

        assert stage.service is not None
        verdict = yield _WaitFor(
            feeds,
            decide,
            deadline_seconds=render.progress_deadline_seconds(stage.service) + CLIENT_DEADLINE_GRACE_SECONDS,
            must_see="deployment",  # just written: it may reach the shared watch after its listing
        )
        return verdict, list((last.get("caches") or {}).get("pods", {}).values())

    # --- atomic rollback ----------------------------------------------------------------------
    def _roll_back_atomically(
        self, stage: Stage, result: StageResult, rollout: _ServiceRollout
    ) -> StageResult:
        """Put every object of the stage this run wrote back as it was read before (remove the ones it
        created), then wait until the restored Deployment is available again. Never raises: what could
        not be done, and the state it left, is the result's ``rollback_error``."""
        name = render.service_name(stage)
        done: list[str] = []
        try:
            previous_deployment = rollout.previous.get("Deployment")
            if previous_deployment is None:
                for kind in ("Ingress", "Service", "Deployment"):
                    if kind in rollout.previous:
                        self._put_back(kind, name, None)
                        done.append(f"{kind}/{name} removed")
                note = "atomic: removed, as this deploy had created it (" + ", ".join(done) + ")"
                return result.evolve(
                    rolled_back=True, rollback_removed=True, message=_joined(result.message, note)
                )
            restored = self._put_back("Deployment", name, previous_deployment)
            done.append(f"Deployment/{name} restored")
            generation = int((restored.get("metadata") or {}).get("generation") or 0)
            verdict, _ = self._wait_here(self._wait_for_rollout(stage, name, generation), threading.Event())
            if verdict is None or verdict.phase is not Phase.SUCCEEDED:
                why = f"{verdict.reason}: {verdict.message}" if verdict else "no verdict"
                raise ClusterError(f"the restored Deployment/{name} did not become available ({why})")
            done[-1] += " and available"
            for kind in ("Service", "Ingress"):
                if kind in rollout.previous:
                    self._put_back(kind, name, rollout.previous[kind])
                    done.append(f"{kind}/{name} {'restored' if rollout.previous[kind] else 'removed'}")
        except ClusterError as exc:
            state = ", ".join(done) if done else f"Deployment/{name} still at this deploy's revision"
            error = self._clean(f"{state}; stopped by: {exc}")
            return result.evolve(
                rollback_error=error, message=_joined(result.message, "NOT rolled back: " + error)
            )
        note = "atomic: rolled back to the revision it had before this deploy (" + ", ".join(done) + ")"
        return result.evolve(rolled_back=True, message=_joined(result.message, note))

    def _put_back(self, kind: str, name: str, previous: Obj | None) -> Obj:
        """Delete the object (``previous`` None), or write ``previous`` back over its live version."""
        if previous is None:
            self.cluster.delete_object(KINDS[kind], name, namespace=self.namespace)
            return {}
        rolled_back_from = self.context.deployment_id if kind == "Deployment" else ""
        current = self.cluster.read_object(KINDS[kind], name, namespace=self.namespace)
        body = build_restored_object(previous, current, rolled_back_from=rolled_back_from)
        if current is None:
            return self.cluster.create_object(body)
        try:
            return self.cluster.replace_object(body)
        except ClusterConflict:  # changed since we read it: once more from its current version
            current = self.cluster.read_object(KINDS[kind], name, namespace=self.namespace)
            return self.cluster.replace_object(
                build_restored_object(previous, current, rolled_back_from=rolled_back_from)
            )

    # --- shared -------------------------------------------------------------------------------
    def _apply(self, manifest: Obj, existing: Obj | None) -> Obj:
        """Create, or replace (PUT) so that fields no longer rendered really go away."""
        applied = self._create_or_replace(manifest, existing)
        with self._lock:
            self.created.append(applied)
        return applied

    def _create_or_replace(self, manifest: Obj, existing: Obj | None) -> Obj:
        kind, name = kind_of(manifest), object_name(manifest)
        if existing is None:
            try:
                applied = self.cluster.create_object(
                    manifest, is_ours=lambda found: is_same_object(manifest, found)
                )
            except ClusterConflict:
                existing = self.cluster.read_object(kind, name, namespace=self.namespace) or {}
                if not is_owned(existing, render.pipeline_label(self.pipeline)):
                    raise  # someone else's object with our name: a conflict, never taken over
                applied = self.cluster.replace_object(build_replacement(manifest, existing))
        else:
            try:
                applied = self.cluster.replace_object(build_replacement(manifest, existing))
            except ClusterConflict:  # changed since we listed it: once more from its current version
                existing = self.cluster.read_object(kind, name, namespace=self.namespace) or {}
                applied = self.cluster.replace_object(build_replacement(manifest, existing))
        return applied

    def _gather_failure_details(
        self, owner_names: Sequence[str], pods: Sequence[Obj], verdict: Verdict
    ) -> tuple[tuple[EventRecord, ...], dict[str, tuple[str, ...]]]:
        """Related Events and the last lines of every container of the failed pods (init included)."""
        by_name = {object_name(p): p for p in pods}
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
            object_name(o)
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
                lines = self._read_log(object_name(pod), container, previous)
                logs[f"{object_name(pod)}/{container}"] = tuple(self._clean(line) for line in lines)
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


def _joined(message: str, note: str) -> str:
    return f"{message}; {note}" if message else note


def _describe_atomic_rollbacks(results: Sequence[StageResult]) -> list[str]:
    return [
        f"{r.stage} NOT rolled back: {r.rollback_error}"
        if r.rollback_error
        else f"{r.stage} {'removed (new in this deploy)' if r.rollback_removed else 'rolled back'}"
        for r in results
    ]


def _put_back_secrets(
    cluster: Cluster, written: Sequence[tuple[Obj, Obj | None]], redactor: Redactor
) -> list[str]:
    """An atomic deploy that did not succeed: each Secret it wrote back as it was (removed if it
    created it). Never raises: a Secret that could not be put back is said to be left as written."""
    done: list[str] = []
    for manifest, existing in reversed(written):
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        try:
            if existing is None:
                cluster.delete_object(SECRET, name, namespace=namespace)
                done.append(f"Secret/{name} removed (created by this deploy)")
                continue
            current = cluster.read_object(SECRET, name, namespace=namespace)
            body = build_restored_object(existing, current)
            if current is None:
                cluster.create_object(body)
            else:
                cluster.replace_object(body)
            done.append(f"Secret/{name} put back as it was")
        except ClusterError as exc:
            done.append(redactor.redact(f"Secret/{name} NOT put back, left as this deploy wrote it: {exc}"))
    return done


def _kept_namespace(namespace: str) -> str:
    # Its Lease keeps the next run of the pipeline waiting its turn; deleting it under that run would not.
    return f"namespace {namespace} was created by this deploy and is kept (bodywork-action delete removes it)"


# ------------------------------------------------------------------------------------ deploy


@dataclass(frozen=True)
class _PreparedSecrets:
    manifests: tuple[Obj, ...]  # to create or replace in the target namespace
    existing: Mapping[str, Obj]  # secrets already in the namespace, by name


def prepare_secrets(
    cluster: Cluster, pipeline: Pipeline, namespace: str, secrets: SecretSupply, *, namespace_exists: bool
) -> _PreparedSecrets:
    """Check every key a stage needs exists (supplied, in the namespace, or in Bodywork's store) and
    render the Secrets to write. Raises MissingSecrets with the full list; creates nothing."""
    needed = build_needed_keys(pipeline)
    group = secrets_group(secrets, pipeline)
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
    manifests = build_secret_manifests(
        plan,
        secrets,
        existing=existing,
        store=store,
        namespace=namespace,
        group=group,
        pipeline_label=render.pipeline_label(pipeline),
    )
    return _PreparedSecrets(manifests, existing)


def deploy_pipeline(
    pipeline: Pipeline,
    context: DeployContext,
    *,
    target: KubeTarget,
    secrets: SecretSupply | None = None,
    dry_run: bool = False,
    selection: StageSelection = EVERY_STAGE,
    smoke_tests: Mapping[str, str] | None = None,
    report: Reporter = _ignore,
    cancel: threading.Event | None = None,
    config_dir: str = "",
    environ: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
    timeout_seconds: float | None = None,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    atomic: bool = False,
) -> DeploymentResult:
    """Deploy ``pipeline`` to the cluster ``target`` names; the result says whether it succeeded.

    ``selection``: a partial run applies (and prunes among) only the selected stages' objects.

    ``atomic``: a deploy that does not succeed (or raises) puts back every service stage and Secret
    it changed and removes the ones it created, so the pipeline is left all old (see ``execute``).

    Raises ``MissingSecrets`` (nothing created), ``InputError`` for a bad kubeconfig,
    ``ClusterAuthError`` when refused, ``ClusterUnreachable`` when the cluster never answered,
    ``LockTimeout`` when another run held the pipeline for longer than ``lock_timeout_seconds``, and
    ``ClusterError`` otherwise. A stage that fails is a result, not an exception; so is an API
    server that went away for longer than ``timeout_seconds`` (default: an hour) after the first
    stage started.
    """
    cluster = connect_cluster(target, environ=environ)
    try:
        return run_deployment(
            cluster,
            pipeline,
            context,
            secrets=secrets or SecretSupply(),
            dry_run=dry_run,
            selection=selection,
            smoke_tests=smoke_tests,
            report=report,
            cancel=cancel or threading.Event(),
            config_dir=config_dir,
            clock=clock,
            timeout_seconds=timeout_seconds,
            lock_timeout_seconds=lock_timeout_seconds,
            atomic=atomic,
        )
    finally:
        cluster.close()


def _waiting(report: Reporter) -> Callable[[str], None]:
    def on_wait(line: str) -> None:
        report(Progress(ProgressKind.WAITING, 0, (), detail=line))

    return on_wait


def run_deployment(
    cluster: Cluster,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    secrets: SecretSupply,
    dry_run: bool = False,
    selection: StageSelection = EVERY_STAGE,
    smoke_tests: Mapping[str, str] | None = None,
    report: Reporter = _ignore,
    cancel: threading.Event,
    config_dir: str = "",
    clock: Callable[[], float] = time.time,
    timeout_seconds: float | None = None,
    lock_timeout_seconds: float = DEFAULT_LOCK_TIMEOUT_SECONDS,
    atomic: bool = False,
) -> DeploymentResult:
    """``deploy_pipeline`` on an already connected cluster."""
    started = clock()
    applied: list[str] = []  # Kind/name written before the first stage (for an outage's report)
    try:
        return _run_deployment(
            cluster,
            pipeline,
            context,
            secrets=secrets,
            dry_run=dry_run,
            selection=selection,
            smoke_tests=smoke_tests,
            report=report,
            cancel=cancel,
            config_dir=config_dir,
            clock=clock,
            timeout_seconds=timeout_seconds,
            lock_timeout_seconds=lock_timeout_seconds,
            applied=applied,
            atomic=atomic,
        )
    except ClusterOutage as exc:  # before any stage started: still a failed deploy, not bad input
        done = f"applied: {', '.join(applied)}" if applied else "nothing was applied"
        return _ended_before_any_stage(
            pipeline,
            render.target_namespace(pipeline, context),
            context,
            f"cluster {cluster.server}",
            started,
            clock(),
            f"{exc}; {done}; no stage was started",
            status=DeploymentStatus.FAILED,
        )


def _run_deployment(
    cluster: Cluster,
    pipeline: Pipeline,
    context: DeployContext,
    *,
    secrets: SecretSupply,
    dry_run: bool,
    selection: StageSelection,
    smoke_tests: Mapping[str, str] | None,
    report: Reporter,
    cancel: threading.Event,
    config_dir: str,
    clock: Callable[[], float],
    timeout_seconds: float | None,
    lock_timeout_seconds: float,
    applied: list[str],
    atomic: bool = False,
) -> DeploymentResult:
    started = clock()
    cluster.deadline = time.monotonic() + (
        DEFAULT_DEPLOY_TIMEOUT_SECONDS if timeout_seconds is None else timeout_seconds
    )
    cluster.cancel = cancel
    cluster.on_wait = _waiting(report)
    progress = StageProgress(pipeline, report, redactor=secrets.redactor())
    cluster.on_request = lambda call: progress.debug(f"API {call.describe()}")
    entropy = hashlib.sha256(f"{time.time_ns()}:{threading.get_ident()}".encode()).hexdigest()[:6]
    plan = render_plan(
        pipeline,
        build_unique_context(context, now_seconds=started, entropy=entropy),
        config_dir=config_dir,
        selection=selection,
    )
    context, namespace = plan.context, plan.namespace
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
            return _ended_before_any_stage(
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
    redactor = redactor_for(secrets, prepared)
    missing_pull_secrets = find_missing_pull_secrets(
        cluster,
        context.image_pull_secrets,
        namespace=namespace,
        namespace_exists=namespace_object is not None,
    )
    if missing_pull_secrets:
        warning = describe_missing_pull_secrets(missing_pull_secrets, namespace)
        report(Progress(ProgressKind.WARNING, 0, (), detail=warning))
    if dry_run:
        return _dry_run(
            cluster,
            plan,
            prepared,
            namespace_object,
            started,
            clock,
            redactor,
            namespace_terminating=terminating,
        )

    created_namespace = False  # by this run, just now: nothing of the pipeline can be in it yet
    if namespace_object is None:
        try:
            cluster.create_object(plan.namespace_object, is_ours=lambda found: not is_terminating(found))
            applied.append(f"Namespace/{namespace}")
            created_namespace = True
        except ClusterConflict:
            pass  # created meanwhile by someone else (e.g. a run of this pipeline started together)
    # One deploy of a pipeline at a time: everything from here on happens under its Lease.
    holder = build_holder(
        command="deploy", deployment_id=context.deployment_id, run_url=context.run_url, commit=context.commit
    )
    with hold_pipeline_lock(
        cluster,
        namespace=namespace,
        pipeline_label=render.pipeline_label(pipeline),
        holder=holder,
        timeout_seconds=lock_timeout_seconds,
        cancel=cancel,
        report=_waiting(report),
    ) as lock:
        if lock is None:
            return _ended_before_any_stage(
                pipeline,
                namespace,
                context,
                f"cluster {cluster.server}",
                started,
                clock(),
                f"cancelled while waiting for another run of {pipeline.name} to finish; nothing was applied",
            )
        # Another run took the Lease (ours went unrenewed too long): stop at once rather than deploy
        # alongside it; the result then says the deploy failed, and nothing is pruned.
        lock.on_lost = cancel.set
        observed = ObservedObjects()
        if not (created_namespace and lock.first_holder):
            # Read again under the lock: a run that held it may have changed the secrets meanwhile.
            prepared = prepare_secrets(cluster, pipeline, namespace, secrets, namespace_exists=True)
            redactor = redactor_for(secrets, prepared)
            observed = read_observed_objects(cluster, pipeline, namespace)
        written: list[tuple[Obj, Obj | None]] = []  # each Secret this run wrote, and what it replaced
        backend: ClusterBackend | None = None
        try:
            for manifest in prepared.manifests:
                existing_secret = prepared.existing.get(manifest["metadata"]["name"])
                _write_secret(cluster, manifest, existing_secret)
                written.append((manifest, existing_secret))
                applied.append(f"Secret/{manifest['metadata']['name']}")
            progress.redactor = redactor
            backend = ClusterBackend(
                cluster,
                plan,
                observed=observed,
                smoke_tests=smoke_tests,
                redactor=redactor,
                clock=clock,
                progress=progress,
            )
            backend.applied_before = applied
            backend.start_watching()
            result = execute(
                pipeline,
                backend,
                report=report,
                cancel=cancel,
                clock=clock,
                commit=context.commit,
                atomic=atomic,
                selection=plan.selection,
            )
        except BodyworkActionError as exc:
            if atomic:  # the error is still the outcome; it also says what was put back, and what not
                undone = [
                    *_describe_atomic_rollbacks(backend.atomic_rollbacks if backend else []),
                    *_put_back_secrets(cluster, written, redactor),
                ]
                if created_namespace:
                    undone.append(_kept_namespace(namespace))
                exc.args = (f"{exc}; atomic: {'; '.join(undone) or 'nothing had been applied'}",)
            raise
        finally:
            if backend is not None:
                backend.close()
        if atomic and not result.succeeded:
            undone = _put_back_secrets(cluster, written, redactor)
            if created_namespace:
                undone.append(_kept_namespace(namespace))
            if undone:
                result = replace(result, message=_joined(result.message, "atomic: " + "; ".join(undone)))
        if lock.lost:
            result = replace(
                result,
                status=DeploymentStatus.FAILED,
                message=f"stopped: the lock was lost to {lock.lost}, which may be deploying this pipeline "
                f"now; {result.message}".rstrip("; "),
            )
        return result


def redactor_for(secrets: SecretSupply, prepared: _PreparedSecrets) -> Redactor:
    """The values supplied now, and every value of the Secrets this deploy writes or keeps."""
    return Redactor(
        [
            *secrets.all_values(),
            *secret_values_of(prepared.manifests),
            *secret_values_of(prepared.existing.values()),
        ]
    )


def _write_secret(cluster: Cluster, manifest: Obj, existing: Obj | None) -> None:
    """Create the Secret, or replace it (PUT) with exactly our keys; a create whose answer was lost
    and that holds exactly what we sent counts as written."""
    if existing is None:
        try:
            cluster.create_object(manifest, is_ours=lambda found: is_same_object(manifest, found))
            return
        except ClusterConflict:
            existing = (
                cluster.read_object(
                    SECRET, manifest["metadata"]["name"], namespace=manifest["metadata"]["namespace"]
                )
                or {}
            )
    try:
        cluster.replace_object(build_replacement(manifest, existing))
    except ClusterConflict:  # changed since we read it, or our own retried PUT already landed
        current = cluster.read_object(
            SECRET, manifest["metadata"]["name"], namespace=manifest["metadata"]["namespace"]
        )
        cluster.replace_object(build_replacement(manifest, current or {}))


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


def _ended_before_any_stage(
    pipeline: Pipeline,
    namespace: str,
    context: DeployContext,
    target: str,
    started: float,
    finished: float,
    message: str,
    *,
    status: DeploymentStatus = DeploymentStatus.CANCELLED,
) -> DeploymentResult:
    """A deploy that ended before its first stage: cancelled, or failed (the API server went away)."""
    cancelled = status is DeploymentStatus.CANCELLED
    return DeploymentResult(
        pipeline=pipeline.name,
        namespace=namespace,
        steps=pipeline.steps,
        stages=tuple(
            StageResult(
                stage=stage.name,
                kind=stage.kind,
                status=StageStatus.CANCELLED if cancelled else StageStatus.SKIPPED,
            )
            for stage in pipeline.dag_stages
        ),
        status=status,
        started_at=started,
        finished_at=finished,
        commit=context.commit,
        target=target,
        message=message,
    )


def _dry_run(
    cluster: Cluster,
    plan: Plan,
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
    pipeline, context, namespace = plan.pipeline, plan.context, plan.namespace
    observed = (
        read_observed_objects(cluster, pipeline, namespace)
        if namespace_object is not None
        else ObservedObjects()
    )
    unchecked = 0
    if namespace_object is None and not namespace_terminating:
        cluster.create_object(plan.namespace_object, dry_run=True)

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
    for stage_plan in plan.stages:
        stage = stage_plan.stage
        if not plan.selection.includes(stage.name):
            results.append(plan.selection.skipped_result(stage))
            continue
        names = [f"{o['kind']}/{o['metadata']['name']}" for o in stage_plan.objects]
        try:
            for manifest in stage_plan.objects:
                send(manifest, observed.get(str(manifest["kind"]), object_name(manifest)))
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
    note = f"dry run: nothing was created ({len(plan.selected_objects())} objects sent with dryRun=All"
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
