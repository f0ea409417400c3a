"""Simulated Job, Deployment and ReplicaSet controllers, scheduler and kubelet, scriptable per object.

Everything here runs on the single scheduler thread: store writes enqueue a dispatch, delays are
timers on the same heap.  No polling, no sleeping.
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .json_data import deep_copy
from .resources import resolve
from .selectors import label_selector, match_labels_selector
from .store import ApiError, Store, WatchEvent, now_iso, template_hash

if TYPE_CHECKING:
    from .cluster import FakeCluster

JOBS, PODS, DEPLOYS, RSS = resolve("jobs"), resolve("pods"), resolve("deployments"), resolve("replicasets")
EVENTS, SAS = resolve("events"), resolve("serviceaccounts")
NODE = "fake-node"
BEHAVIORS = ("ok", "fail", "crashloop", "imagepull", "unschedulable", "hang")


@dataclass
class Scenario:
    """What the simulated kubelet does with the pods of a matching Job or Deployment.

    Durations are seconds of simulated time; the cluster multiplies them by `time_scale`.

    behavior:
      ok            Job pods exit 0 after run_seconds; Deployment pods become Ready after ready_seconds.
      fail          every pod fails (Job: exit `exit_code`; Deployment: same as crashloop).
      crashloop     containers start, crash after run_seconds, restart with back-off (CrashLoopBackOff).
      imagepull     ErrImagePull, then ImagePullBackOff, forever.
      unschedulable pods stay Pending with PodScheduled=False, reason Unschedulable.
      hang          containers run forever and never become Ready.
    fail_times:     Job only: the first K pods fail, later pods follow `behavior`.
    logs:           lines for every app container, or {container_name: [lines]} (init containers too).
    failure_logs:   like logs, for pods that fail (default: logs).
    previous_logs:  like logs, for the previous instance of a restarted container (`previous=true`;
                    default: failure_logs, else logs).
    image:          the script only applies when some container of the pod template uses this image.
    """

    behavior: str = "ok"
    fail_times: int = 0
    start_seconds: float = 0.5
    run_seconds: float = 1.0
    ready_seconds: float = 0.5
    exit_code: int = 1
    logs: list[str] | dict[str, list[str]] = field(default_factory=list)
    failure_logs: list[str] | dict[str, list[str]] | None = None
    previous_logs: list[str] | dict[str, list[str]] | None = None
    image: str | None = None

    def __post_init__(self) -> None:
        if self.behavior not in BEHAVIORS:
            raise ValueError(f"behavior must be one of {BEHAVIORS}, not {self.behavior!r}")

    @classmethod
    def from_dict(cls, data: dict) -> Scenario:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown scenario fields: {sorted(unknown)}")
        return cls(**data)

    def logs_for(self, container: str, init: bool, failed: bool, previous: bool = False) -> list[str]:
        source = self.failure_logs if failed and self.failure_logs is not None else self.logs
        if previous:
            source = next(s for s in (self.previous_logs, self.failure_logs, self.logs) if s is not None)
        if isinstance(source, dict):
            return list(source.get(container, []))
        return [] if init else list(source)


@dataclass
class Script:
    kind: str  # "Job" / "Deployment" / "ReplicaSet" / "Pod"
    namespace: str | None
    name: str | None
    selector: Any  # compiled label predicate or None
    scenario: Scenario


@dataclass
class PodPlan:
    scenario: Scenario
    fails: bool
    restarts: int = 0
    started: bool = False


def set_condition(
    conditions: list, type_: str, status: str, reason: str = "", message: str = "", probe: bool = False
) -> None:
    """Upsert a condition, keeping lastTransitionTime while the status does not change."""
    now = now_iso()
    for c in conditions:
        if c.get("type") == type_:
            if c.get("status") != status:
                c["lastTransitionTime"] = now
            c.update(status=status, reason=reason, message=message)
            if "lastUpdateTime" in c and (c.get("reason") != reason or c.get("message") != message):
                c["lastUpdateTime"] = now
            return
    cond = {"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": now}
    if probe:
        cond["lastProbeTime"] = now
    conditions.append(cond)


def condition(obj: dict, type_: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return c
    return None


def is_ready(pod: dict) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def is_active(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed") and not pod["metadata"].get(
        "deletionTimestamp"
    )


def owner_ref(obj: dict) -> dict:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: dict) -> dict | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def resolve_int_or_percent(value: Any, total: int, round_up: bool) -> int:
    if isinstance(value, str) and value.endswith("%"):
        x = total * int(value[:-1]) / 100
        return math.ceil(x) if round_up else math.floor(x)
    return int(value or 0)


class Controllers:
    """The simulated controllers and kubelet. Objects read with `store.peek` / `copy=False` are the
    stored ones: they are only read here, every change goes through `store.mutate`."""

    def __init__(self, cluster: FakeCluster):
        self.cluster = cluster
        self.store: Store = cluster.store
        self.scheduler = cluster.scheduler
        self.scripts: list[Script] = []
        self.plans: dict[str, PodPlan] = {}  # pod uid -> plan
        self.job_attempts: dict[str, int] = {}
        self.job_pending: set[str] = set()
        self.job_deadline: set[str] = set()
        self.job_deadline_armed: set[str] = set()
        self.rollouts: dict[str, dict] = {}  # deployment uid -> progress record
        self._event_keys: dict[tuple, str] = {}
        self.store.listeners.append(self._on_store_event)
        for ns in self.store.list(resolve("namespaces"))[0]:
            self.store.create(SAS, ns["metadata"]["name"], {"metadata": {"name": "default"}})

    # ------------------------------------------------------------------ helpers
    def delay(self, seconds: float) -> float:
        return max(0.0, seconds) * self.cluster.time_scale

    def repeat_delay(self, seconds: float) -> float:
        return max(self.delay(seconds), 0.01)

    def later(self, seconds: float, fn, *args) -> None:
        self.scheduler.call_later(seconds, fn, *args)

    def _on_store_event(self, ev: WatchEvent) -> None:
        if ev.resource.kind in ("Namespace", "Job", "Deployment", "ReplicaSet", "Pod"):
            self.scheduler.call_later(0, self._dispatch, ev)

    def _dispatch(self, ev: WatchEvent) -> None:
        kind, meta = ev.resource.kind, ev.obj["metadata"]
        ns, name = meta.get("namespace"), meta["name"]
        if kind == "Namespace" and ev.type == "ADDED":
            if self.store.peek(SAS, name, "default") is None:
                with contextlib.suppress(ApiError):
                    self.store.create(SAS, name, {"metadata": {"name": "default"}})
        elif kind == "Job":
            if ev.type != "DELETED":
                self.sync_job(ns, name)
        elif kind == "Deployment":
            if ev.type != "DELETED":
                self.sync_deployment(ns, name)
        elif kind == "ReplicaSet":
            if ev.type != "DELETED":
                self.sync_rs(ns, name)
            self._sync_owner(ev.obj)
        elif kind == "Pod":
            if ev.type == "ADDED":
                self.kubelet_start(ns, name, meta["uid"])
            elif ev.type == "DELETED":
                self.plans.pop(meta["uid"], None)
            self._sync_owner(ev.obj)

    def _sync_owner(self, obj: dict) -> None:
        ref = controller_of(obj)
        if not ref:
            return
        ns = obj["metadata"].get("namespace")
        if ref["kind"] == "Job":
            self.sync_job(ns, ref["name"])
        elif ref["kind"] == "ReplicaSet":
            self.sync_rs(ns, ref["name"])
        elif ref["kind"] == "Deployment":
            self.sync_deployment(ns, ref["name"])

    def event(self, obj: dict, type_: str, reason: str, message: str, component: str) -> None:
        meta = obj["metadata"]
        ns = meta.get("namespace") or "default"
        key = (meta["uid"], reason, message)
        now = now_iso()
        existing = self._event_keys.get(key)
        if existing and self.store.peek(EVENTS, ns, existing) is not None:

            def bump(e):
                e["count"] = e.get("count", 1) + 1
                e["lastTimestamp"] = now

            self.store.mutate(EVENTS, ns, existing, bump, subresource=None)
            return
        body = {
            "metadata": {"generateName": f"{meta['name']}."},
            "involvedObject": {
                "kind": obj["kind"],
                "apiVersion": obj["apiVersion"],
                "namespace": ns,
                "name": meta["name"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": type_,
            "count": 1,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "source": {"component": component, **({"host": NODE} if component == "kubelet" else {})},
            "reportingComponent": component,
            "reportingInstance": NODE if component == "kubelet" else "",
        }
        try:
            created = self.store.create(EVENTS, ns, body, _owned=True)
        except ApiError:
            return
        self._event_keys[key] = created["metadata"]["name"]

    # ------------------------------------------------------------------ scripts
    def script(
        self, kind: str, name_or_selector: Any, scenario: Scenario, namespace: str | None = None
    ) -> None:
        kind = resolve(kind).kind
        if kind not in ("Job", "Deployment", "ReplicaSet", "Pod"):
            raise ValueError(f"only Job, Deployment, ReplicaSet and Pod can be scripted, not {kind}")
        name, selector = None, None
        if isinstance(name_or_selector, dict):
            selector = match_labels_selector({"matchLabels": name_or_selector})
        elif isinstance(name_or_selector, str) and any(c in name_or_selector for c in "=!,() "):
            selector = label_selector(name_or_selector)
        else:
            name = name_or_selector
        self.scripts.append(Script(kind, namespace, name, selector, scenario))

    def scenario_for(self, workload: dict | None, pod: dict) -> Scenario:
        images = {c.get("image") for c in pod["spec"].get("containers") or []}
        chain = [pod]
        if workload is not None:
            chain.insert(0, workload)
        for s in reversed(self.scripts):
            if s.scenario.image is not None and s.scenario.image not in images:
                continue
            for obj in chain:
                meta = obj["metadata"]
                if obj["kind"] != s.kind or (s.namespace and meta.get("namespace") != s.namespace):
                    continue
                if s.name is not None and meta["name"] == s.name:
                    return s.scenario
                if s.selector is not None and s.selector(meta.get("labels") or {}):
                    return s.scenario
        return Scenario()

    # ------------------------------------------------------------------ Job controller
    def sync_job(self, ns: str, name: str) -> None:
        job = self.store.peek(JOBS, ns, name)
        if job is None:
            return
        uid, spec = job["metadata"]["uid"], job["spec"]
        status = job.get("status") or {}
        if any(
            c.get("status") == "True" and c.get("type") in ("Complete", "Failed")
            for c in status.get("conditions") or []
        ):
            return
        if spec.get("suspend"):
            return
        pods = [
            p
            for p in self.store.owned(PODS, ns, uid, copy=False)
            if (controller_of(p) or {}).get("uid") == uid
        ]
        active = [p for p in pods if is_active(p)]
        succeeded = max(
            status.get("succeeded", 0), sum(p["status"].get("phase") == "Succeeded" for p in pods)
        )
        failed = max(status.get("failed", 0), sum(p["status"].get("phase") == "Failed" for p in pods))
        completions, backoff = spec.get("completions") or 1, spec.get("backoffLimit", 6)
        new = deep_copy(status)
        new.setdefault("startTime", now_iso())
        conds = new.setdefault("conditions", [])
        finished = None
        if succeeded >= completions:
            set_condition(
                conds,
                "SuccessCriteriaMet",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                probe=True,
            )
            set_condition(
                conds,
                "Complete",
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
                probe=True,
            )
            new["completionTime"] = now_iso()
            finished = ("Normal", "Completed", "Job completed")
        elif failed > backoff or uid in self.job_deadline:
            if uid in self.job_deadline:
                reason, message = "DeadlineExceeded", "Job was active longer than specified deadline"
            else:
                reason, message = "BackoffLimitExceeded", "Job has reached the specified backoff limit"
            set_condition(conds, "FailureTarget", "True", reason, message, probe=True)
            set_condition(conds, "Failed", "True", reason, message, probe=True)
            finished = ("Warning", reason, message)
        if finished:
            for p in active:
                with contextlib.suppress(ApiError):
                    self.store.delete(PODS, ns, p["metadata"]["name"])
            active = []
        else:
            want = min(spec.get("parallelism") or 1, completions - succeeded) - len(active)
            if want > 0 and uid not in self.job_pending:
                self.job_pending.add(uid)
                retry = 0.0 if not failed else self.delay(10 * 2 ** (failed - 1))
                self.later(min(retry, self.delay(360)), self._create_job_pods, ns, name, uid, want)
            deadline = spec.get("activeDeadlineSeconds")
            if deadline and uid not in self.job_deadline_armed:
                self.job_deadline_armed.add(uid)
                self.later(self.delay(deadline), self._job_deadline, ns, name, uid)
        if not conds:
            del new["conditions"]
        new["active"] = len(active)
        new["ready"] = sum(is_ready(p) for p in active)
        new["terminating"] = 0
        if succeeded:
            new["succeeded"] = succeeded
        if failed:
            new["failed"] = failed
        new.setdefault("uncountedTerminatedPods", {})
        if new != status:
            self.store.mutate(JOBS, ns, name, lambda j: j.__setitem__("status", new))
        if finished:
            self.event(job, *finished, "job-controller")

    def _job_deadline(self, ns: str, name: str, uid: str) -> None:
        self.job_deadline.add(uid)
        self.sync_job(ns, name)

    def _create_job_pods(self, ns: str, name: str, uid: str, count: int) -> None:
        self.job_pending.discard(uid)
        job = self.store.peek(JOBS, ns, name)
        if job is None or job["metadata"]["uid"] != uid:
            return
        for _ in range(count):
            attempt = self.job_attempts.get(uid, 0)
            self.job_attempts[uid] = attempt + 1
            pod = self._new_pod(job, job["spec"]["template"], name)
            sc = self.scenario_for(job, pod)
            fails = sc.behavior in ("fail", "crashloop") or attempt < sc.fail_times
            created = self._create_pod(ns, pod, sc, fails)
            if created:
                self.event(
                    job,
                    "Normal",
                    "SuccessfulCreate",
                    f"Created pod: {created['metadata']['name']}",
                    "job-controller",
                )
        self.sync_job(ns, name)

    def _new_pod(self, owner: dict, template: dict, base: str) -> dict:
        suffix = "".join(self.store.rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
        meta = deep_copy(template.get("metadata") or {})
        meta.update(
            name=f"{base}-{suffix}",
            namespace=owner["metadata"]["namespace"],
            ownerReferences=[owner_ref(owner)],
        )
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": meta,
            "spec": deep_copy(template.get("spec") or {}),
            "status": {"phase": "Pending"},
        }

    def _create_pod(self, ns: str, pod: dict, sc: Scenario, fails: bool) -> dict | None:
        try:
            created = self.store.create(PODS, ns, pod, _owned=True)
        except ApiError:
            return None
        self.plans[created["metadata"]["uid"]] = PodPlan(sc, fails)
        return created

    # ------------------------------------------------------------------ ReplicaSet controller
    def sync_rs(self, ns: str, name: str) -> None:
        rs = self.store.peek(RSS, ns, name)
        if rs is None:
            return
        uid = rs["metadata"]["uid"]
        pods = [
            p
            for p in self.store.owned(PODS, ns, uid, copy=False)
            if (controller_of(p) or {}).get("uid") == uid and is_active(p)
        ]
        want = rs["spec"].get("replicas", 1)
        if len(pods) < want:
            owner = self._deployment_of(rs)
            for _ in range(want - len(pods)):
                pod = self._new_pod(rs, rs["spec"]["template"], name)
                sc = self.scenario_for(owner or rs, pod)
                created = self._create_pod(ns, pod, sc, sc.behavior in ("fail", "crashloop"))
                if created:
                    pods.append(created)
                    self.event(
                        rs,
                        "Normal",
                        "SuccessfulCreate",
                        f"Created pod: {created['metadata']['name']}",
                        "replicaset-controller",
                    )
        elif len(pods) > want:
            victims = sorted(pods, key=lambda p: (is_ready(p), p["metadata"]["creationTimestamp"]))
            for p in victims[: len(pods) - want]:
                try:
                    self.store.delete(PODS, ns, p["metadata"]["name"])
                except ApiError:
                    continue
                pods.remove(p)
                self.event(
                    rs,
                    "Normal",
                    "SuccessfulDelete",
                    f"Deleted pod: {p['metadata']['name']}",
                    "replicaset-controller",
                )
        ready = sum(is_ready(p) for p in pods)
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        if status != rs.get("status"):
            self.store.mutate(RSS, ns, name, lambda o: o.__setitem__("status", status))

    def _deployment_of(self, rs: dict) -> dict | None:
        ref = controller_of(rs)
        if ref and ref["kind"] == "Deployment":
            return self.store.peek(DEPLOYS, rs["metadata"]["namespace"], ref["name"])
        return None

    # ------------------------------------------------------------------ Deployment controller
    def sync_deployment(self, ns: str, name: str) -> None:
        d = self.store.peek(DEPLOYS, ns, name)
        if d is None or d["spec"].get("paused"):
            return
        uid, spec = d["metadata"]["uid"], d["spec"]
        desired = spec.get("replicas", 1)
        template = spec["template"]
        h = template_hash(template)
        rss = [
            r
            for r in self.store.owned(RSS, ns, uid, copy=False)
            if (controller_of(r) or {}).get("uid") == uid
        ]
        revisions = [
            int((r["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))
            for r in rss
        ]
        max_rev = max(revisions, default=0)
        new_rs = next(
            (r for r in rss if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None
        )
        old = [r for r in rss if r is not new_rs]
        recreate = (spec.get("strategy") or {}).get("type") == "Recreate"
        old_active = [
            r for r in old if r["spec"].get("replicas", 0) > 0 or r.get("status", {}).get("replicas")
        ]
        if new_rs is None:
            rs_name = f"{name}-{h}"
            rs_template = deep_copy(template)
            rs_template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = h
            selector = deep_copy(spec["selector"])
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            replicas = 0 if recreate and old_active else desired
            body = {
                "metadata": {
                    "name": rs_name,
                    "labels": dict(rs_template["metadata"]["labels"]),
                    "annotations": {
                        "deployment.kubernetes.io/revision": str(max_rev + 1),
                        "deployment.kubernetes.io/desired-replicas": str(desired),
                    },
                    "ownerReferences": [owner_ref(d)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": rs_template},
            }
            try:
                new_rs = self.store.create(RSS, ns, body, _owned=True)
            except ApiError:
                return
            max_rev += 1
            self.event(
                d,
                "Normal",
                "ScalingReplicaSet",
                f"Scaled up replica set {rs_name} from 0 to {replicas}",
                "deployment-controller",
            )
        else:
            rev = int(
                (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0)
            )
            if (
                rev < max_rev
            ):  # rolling back to an older template: that ReplicaSet becomes the newest revision
                max_rev += 1

                def bump(r, rev=max_rev):
                    r["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(
                        rev
                    )

                new_rs = (
                    self.store.mutate(RSS, ns, new_rs["metadata"]["name"], bump, subresource=None) or new_rs
                )
        new_name = new_rs["metadata"]["name"]
        rec = self.rollouts.get(uid)
        if rec is None or rec["hash"] != h:
            rec = self.rollouts[uid] = {
                "hash": h,
                "stamp": time.monotonic(),
                "ready": -1,
                "exceeded": False,
                "started": True,
            }
        ready_new = (new_rs.get("status") or {}).get("readyReplicas", 0)
        if ready_new > rec["ready"]:
            rec["ready"], rec["stamp"] = ready_new, time.monotonic()
            deadline = spec.get("progressDeadlineSeconds", 600)
            self.later(self.delay(deadline), self._progress_check, ns, name, uid, h, rec["stamp"])
        # scaling
        if recreate:
            for r in old_active:
                self._scale(d, r, 0)
            if not any(r.get("status", {}).get("replicas") for r in old):
                self._scale(d, new_rs, desired)
        else:
            self._scale(d, new_rs, desired)
            new_ok = ready_new >= desired and (new_rs.get("status") or {}).get("replicas", 0) >= desired
            if new_ok:
                for r in old:
                    self._scale(d, r, 0)
        # status
        rss = [
            r
            for r in self.store.owned(RSS, ns, uid, copy=False)
            if (controller_of(r) or {}).get("uid") == uid
        ]
        new_rs = next((r for r in rss if r["metadata"]["name"] == new_name), new_rs)
        st = [r.get("status") or {} for r in rss]
        total = sum(s.get("replicas", 0) for s in st)
        available = sum(s.get("availableReplicas", 0) for s in st)
        updated = (new_rs.get("status") or {}).get("replicas", 0)
        max_unavailable = resolve_int_or_percent(
            ((spec.get("strategy") or {}).get("rollingUpdate") or {}).get("maxUnavailable", "25%"),
            desired,
            False,
        )
        old_status = d.get("status") or {}
        status = deep_copy(old_status)
        status.update(
            observedGeneration=d["metadata"].get("generation", 1),
            replicas=total,
            updatedReplicas=updated,
            readyReplicas=sum(s.get("readyReplicas", 0) for s in st),
            availableReplicas=available,
            unavailableReplicas=max(0, desired - available),
        )
        for k in ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas"):
            if not status[k] and k != "replicas":
                status.pop(k)
        conds = status.setdefault("conditions", [])
        if available >= desired - max_unavailable:
            set_condition(
                conds, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability."
            )
        else:
            set_condition(
                conds,
                "Available",
                "False",
                "MinimumReplicasUnavailable",
                "Deployment does not have minimum availability.",
            )
        complete = updated == desired and total == desired and available >= desired
        if complete:
            set_condition(
                conds,
                "Progressing",
                "True",
                "NewReplicaSetAvailable",
                f'ReplicaSet "{new_name}" has successfully progressed.',
            )
        elif rec["exceeded"]:
            set_condition(
                conds,
                "Progressing",
                "False",
                "ProgressDeadlineExceeded",
                f'ReplicaSet "{new_name}" has timed out progressing.',
            )
        else:
            set_condition(
                conds, "Progressing", "True", "ReplicaSetUpdated", f'ReplicaSet "{new_name}" is progressing.'
            )
        for c in conds:
            c.setdefault("lastUpdateTime", c["lastTransitionTime"])
        conds.sort(key=lambda c: c["type"])
        rec["complete"] = complete
        if status != old_status:
            self.store.mutate(DEPLOYS, ns, name, lambda o: o.__setitem__("status", status))
        rev = (new_rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision")
        if rev and (d["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != rev:

            def annotate(o, rev=rev):
                o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = rev

            self.store.mutate(DEPLOYS, ns, name, annotate, subresource=None)

    def _scale(self, d: dict, rs: dict, replicas: int) -> None:
        current = rs["spec"].get("replicas", 0)
        if current == replicas:
            return

        def scale(o):
            o["spec"]["replicas"] = replicas
            o["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
                d["spec"].get("replicas", 1)
            )

        self.store.mutate(RSS, rs["metadata"]["namespace"], rs["metadata"]["name"], scale, subresource=None)
        direction = "up" if replicas > current else "down"
        self.event(
            d,
            "Normal",
            "ScalingReplicaSet",
            f"Scaled {direction} replica set {rs['metadata']['name']} from {current} to {replicas}",
            "deployment-controller",
        )

    def _progress_check(self, ns: str, name: str, uid: str, h: str, stamp: float) -> None:
        rec = self.rollouts.get(uid)
        if rec is None or rec["hash"] != h or rec["stamp"] != stamp or rec.get("complete"):
            return
        rec["exceeded"] = True
        self.sync_deployment(ns, name)

    # ------------------------------------------------------------------ kubelet
    def _pod_mutate(
        self, ns: str, name: str, uid: str, fn, subresource: str | None = "status"
    ) -> dict | None:
        pod = self.store.peek(PODS, ns, name)
        if pod is None or pod["metadata"]["uid"] != uid:
            return None
        return self.store.mutate(PODS, ns, name, fn, subresource=subresource)

    def kubelet_start(self, ns: str, name: str, uid: str) -> None:
        pod = self.store.peek(PODS, ns, name)
        if pod is None or pod["metadata"]["uid"] != uid:
            return
        plan = self.plans.get(uid)
        if plan is None:  # a pod the controllers did not create (not possible through the API today)
            plan = self.plans[uid] = PodPlan(self.scenario_for(None, pod), False)
        sc = plan.scenario
        if sc.behavior == "unschedulable":
            msg = (
                "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: "
                "1 No preemption victims found for incoming pod."
            )

            def pending(p):
                p["status"] = {"phase": "Pending", "qosClass": "BestEffort", "conditions": []}
                set_condition(
                    p["status"]["conditions"], "PodScheduled", "False", "Unschedulable", msg, probe=True
                )

            pod = self._pod_mutate(ns, name, uid, pending)
            if pod:
                self.event(pod, "Warning", "FailedScheduling", msg, "default-scheduler")
            return
        pod = self._pod_mutate(
            ns, name, uid, lambda p: p["spec"].__setitem__("nodeName", NODE), subresource=None
        )
        if pod is None:
            return
        self.event(
            pod, "Normal", "Scheduled", f"Successfully assigned {ns}/{name} to {NODE}", "default-scheduler"
        )

        def scheduled(p):
            st = p["status"] = {
                "phase": "Pending",
                "hostIP": "10.0.0.1",
                "hostIPs": [{"ip": "10.0.0.1"}],
                "startTime": now_iso(),
                "qosClass": "BestEffort",
                "conditions": [],
            }
            conds = st["conditions"]
            set_condition(conds, "PodReadyToStartContainers", "True")
            set_condition(
                conds,
                "Initialized",
                "False" if p["spec"].get("initContainers") else "True",
                "ContainersNotInitialized" if p["spec"].get("initContainers") else "",
            )
            set_condition(conds, "Ready", "False", "ContainersNotReady", "containers with unready status")
            set_condition(
                conds, "ContainersReady", "False", "ContainersNotReady", "containers with unready status"
            )
            set_condition(conds, "PodScheduled", "True")
            if p["spec"].get("initContainers"):
                st["initContainerStatuses"] = [
                    self._cstatus(c, {"waiting": {"reason": "PodInitializing"}})
                    for c in p["spec"]["initContainers"]
                ]
            st["containerStatuses"] = [
                self._cstatus(c, {"waiting": {"reason": "ContainerCreating"}})
                for c in p["spec"]["containers"]
            ]

        self._pod_mutate(ns, name, uid, scheduled)
        self.later(self.delay(sc.start_seconds), self._kubelet_containers_up, ns, name, uid, 0)

    @staticmethod
    def _cstatus(
        c: dict, state: dict, ready: bool = False, restarts: int = 0, last: dict | None = None
    ) -> dict:
        out = {
            "name": c["name"],
            "image": c.get("image", ""),
            "imageID": "",
            "ready": ready,
            "restartCount": restarts,
            "started": "running" in state,
            "state": state,
            "lastState": last or {},
        }
        if "waiting" not in state or state["waiting"].get("reason") == "CrashLoopBackOff":
            out["imageID"] = f"docker.io/library/{c.get('image', '')}@sha256:{'0' * 64}"
            out["containerID"] = f"containerd://{abs(hash((c['name'], c.get('image')))):064x}"[:77]
        return out

    def _kubelet_containers_up(self, ns: str, name: str, uid: str, pull_failures: int) -> None:
        pod = self.store.peek(PODS, ns, name)
        plan = self.plans.get(uid)
        if pod is None or plan is None or pod["metadata"]["uid"] != uid:
            return
        sc, spec = plan.scenario, pod["spec"]
        main = spec["containers"]
        if sc.behavior == "imagepull":
            image = main[0].get("image", "")
            reason = "ErrImagePull" if pull_failures % 2 == 0 else "ImagePullBackOff"
            if reason == "ErrImagePull":
                message = (
                    f'failed to pull and unpack image "{image}": failed to resolve reference "{image}": '
                    "not found"
                )
                self.event(pod, "Normal", "Pulling", f'Pulling image "{image}"', "kubelet")
                self.event(pod, "Warning", "Failed", f'Failed to pull image "{image}": {message}', "kubelet")
                self.event(pod, "Warning", "Failed", "Error: ErrImagePull", "kubelet")
            else:
                message = f'Back-off pulling image "{image}"'
                self.event(pod, "Normal", "BackOff", message, "kubelet")
                self.event(pod, "Warning", "Failed", "Error: ImagePullBackOff", "kubelet")

            def waiting(p):
                p["status"]["containerStatuses"] = [
                    self._cstatus(c, {"waiting": {"reason": reason, "message": message}}) for c in main
                ]

            self._pod_mutate(ns, name, uid, waiting)
            backoff = (
                self.repeat_delay(min(10 * 2 ** (pull_failures // 2), 300))
                if reason == "ImagePullBackOff"
                else self.repeat_delay(1)
            )
            self.later(backoff, self._kubelet_containers_up, ns, name, uid, pull_failures + 1)
            return
        for c in (spec.get("initContainers") or []) + main:
            image = c.get("image", "")
            self.event(
                pod, "Normal", "Pulled", f'Container image "{image}" already present on machine', "kubelet"
            )
            self.event(pod, "Normal", "Created", f"Created container: {c['name']}", "kubelet")
            self.event(pod, "Normal", "Started", f"Started container {c['name']}", "kubelet")
        plan.started = True
        started = now_iso()

        def running(p):
            st = p["status"]
            st["phase"] = "Running"
            st["podIP"] = f"10.244.0.{abs(hash(uid)) % 250 + 2}"
            st["podIPs"] = [{"ip": st["podIP"]}]
            if spec.get("initContainers"):
                st["initContainerStatuses"] = [
                    self._cstatus(
                        c,
                        {
                            "terminated": {
                                "exitCode": 0,
                                "reason": "Completed",
                                "startedAt": started,
                                "finishedAt": started,
                            }
                        },
                    )
                    for c in spec["initContainers"]
                ]
                set_condition(st["conditions"], "Initialized", "True")
            st["containerStatuses"] = [self._cstatus(c, {"running": {"startedAt": started}}) for c in main]

        self._pod_mutate(ns, name, uid, running)
        restart = spec.get("restartPolicy", "Always")
        if sc.behavior == "hang" and not plan.fails:
            return  # runs forever, never Ready
        if restart != "Always":  # a Job's pod runs to completion
            self.later(self.delay(sc.run_seconds), self._kubelet_exit, ns, name, uid)
        elif plan.fails:
            self.later(self.delay(sc.run_seconds), self._kubelet_crash, ns, name, uid)
        elif sc.behavior != "hang":
            self.later(self.delay(sc.ready_seconds), self._kubelet_ready, ns, name, uid)

    def _kubelet_ready(self, ns: str, name: str, uid: str) -> None:
        def ready(p):
            st = p["status"]
            for cs in st.get("containerStatuses") or []:
                cs["ready"] = True
            set_condition(st["conditions"], "Ready", "True")
            set_condition(st["conditions"], "ContainersReady", "True")

        self._pod_mutate(ns, name, uid, ready)

    def _kubelet_exit(self, ns: str, name: str, uid: str) -> None:
        plan = self.plans.get(uid)
        if plan is None:
            return
        code = plan.scenario.exit_code if plan.fails else 0
        if plan.fails and code == 0:
            code = 1
        now = now_iso()

        def exited(p):
            st = p["status"]
            st["phase"] = "Failed" if plan.fails else "Succeeded"
            for cs in st.get("containerStatuses") or []:
                started = (cs["state"].get("running") or {}).get("startedAt", now)
                cs.update(
                    ready=False,
                    started=False,
                    state={
                        "terminated": {
                            "exitCode": code,
                            "reason": "Error" if plan.fails else "Completed",
                            "startedAt": started,
                            "finishedAt": now,
                        }
                    },
                )
            reason = "PodFailed" if plan.fails else "PodCompleted"
            set_condition(st["conditions"], "Ready", "False", reason)
            set_condition(st["conditions"], "ContainersReady", "False", reason)
            set_condition(st["conditions"], "PodReadyToStartContainers", "False")

        self._pod_mutate(ns, name, uid, exited)

    def _kubelet_crash(self, ns: str, name: str, uid: str) -> None:
        plan = self.plans.get(uid)
        pod = self.store.find(PODS, ns, name)
        if plan is None or pod is None:
            return
        plan.restarts += 1
        backoff = min(10 * 2 ** (plan.restarts - 1), 300)
        now = now_iso()
        code = plan.scenario.exit_code or 1
        pod_ref = f"{name}_{ns}({uid})"

        def crashed(p):
            st = p["status"]
            for cs in st.get("containerStatuses") or []:
                started = (cs["state"].get("running") or {}).get("startedAt", now)
                cs.update(
                    ready=False,
                    started=False,
                    restartCount=plan.restarts,
                    lastState={
                        "terminated": {
                            "exitCode": code,
                            "reason": "Error",
                            "startedAt": started,
                            "finishedAt": now,
                        }
                    },
                    state={
                        "waiting": {
                            "reason": "CrashLoopBackOff",
                            "message": f"back-off {backoff}s restarting failed container="
                            f"{cs['name']} pod={pod_ref}",
                        }
                    },
                )
            set_condition(
                st["conditions"], "Ready", "False", "ContainersNotReady", "containers with unready status"
            )
            set_condition(
                st["conditions"],
                "ContainersReady",
                "False",
                "ContainersNotReady",
                "containers with unready status",
            )

        pod = self._pod_mutate(ns, name, uid, crashed)
        if pod is None:
            return
        for c in pod["spec"]["containers"]:
            self.event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {c['name']} in pod {pod_ref}",
                "kubelet",
            )
        self.later(self.repeat_delay(backoff), self._kubelet_restart, ns, name, uid)

    def _kubelet_restart(self, ns: str, name: str, uid: str) -> None:
        plan = self.plans.get(uid)
        if plan is None:
            return
        now = now_iso()

        def restarted(p):
            for cs in p["status"].get("containerStatuses") or []:
                cs.update(started=True, state={"running": {"startedAt": now}})

        pod = self._pod_mutate(ns, name, uid, restarted)
        if pod is None:
            return
        for c in pod["spec"]["containers"]:
            self.event(pod, "Normal", "Started", f"Started container {c['name']}", "kubelet")
        self.later(self.delay(plan.scenario.run_seconds), self._kubelet_crash, ns, name, uid)

    # ------------------------------------------------------------------ logs
    def pod_log(self, ns: str, name: str, container: str | None, previous: bool = False) -> list[str]:
        pod = self.store.get(PODS, ns, name)
        spec = pod["spec"]
        main = [c["name"] for c in spec.get("containers") or []]
        init = [c["name"] for c in spec.get("initContainers") or []]
        if not container:
            if len(main) != 1:
                raise ApiError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, choose "
                    f"one of: [{' '.join(main)}] or one of the init containers: "
                    f"[{' '.join(init)}]",
                )
            container = main[0]
        if container not in main + init:
            raise ApiError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        statuses = (pod.get("status") or {}).get(
            "containerStatuses" if container in main else "initContainerStatuses"
        ) or []
        cs = next((s for s in statuses if s["name"] == container), None)
        plan = self.plans.get(pod["metadata"]["uid"])
        state = (cs or {}).get("state") or {"waiting": {"reason": "ContainerCreating"}}
        if previous and not (cs or {}).get("restartCount"):
            raise ApiError(
                400, "BadRequest", f'previous terminated container "{container}" in pod "{name}" not found'
            )
        if "waiting" in state and not (cs or {}).get("restartCount"):
            raise ApiError(
                400,
                "BadRequest",
                f'container "{container}" in pod "{name}" is waiting to start: '
                f"{state['waiting'].get('reason', 'ContainerCreating')}",
            )
        if plan is None:
            return []
        return plan.scenario.logs_for(container, container in init, plan.fails, previous)
