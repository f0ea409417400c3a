"""One deploy (or delete) of a pipeline at a time: a ``coordination.k8s.io/v1`` Lease per pipeline
and namespace, held and renewed while the run changes anything.

Shell around pure decisions. ``decide_lease`` says what to do with the Lease as it stands: create
it, take it (free, ours, or expired), or wait for its holder. Expiry is judged the way client-go's
leader election does, by our own clock: a Lease whose ``renewTime`` has not changed for its
``leaseDurationSeconds`` of *our* time is abandoned (a crashed run), whatever the clocks of the two
machines say. Writes carry the ``resourceVersion`` they read, so two runs taking one Lease at once
cannot both win (the loser gets 409 and looks again).

The holder is described in annotations (run URL or host, commit, command, since when), so a run
that gives up waiting names who holds the pipeline.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from bodywork_action import render
from bodywork_action.errors import ClusterConflict, ClusterError
from bodywork_action.kube.client import LEASE, Cluster
from bodywork_action.options import DEFAULT_LOCK_TIMEOUT_SECONDS

__all__ = ["DEFAULT_LOCK_TIMEOUT_SECONDS", "Holder", "LockTimeout", "PipelineLock", "hold_pipeline_lock"]

Obj = dict[str, Any]

LEASE_DURATION_SECONDS = 60  # a holder that stops renewing for this long has crashed
RENEW_EVERY_FRACTION = 3  # renew every duration / 3, so two missed renewals still keep it
LOCK_POLL_SECONDS = 2.0  # how often a waiting run looks at the Lease again
LOCK_REPORT_EVERY_SECONDS = 30.0

ANNOTATION_HOLDER_RUN_URL = "bodywork.dev/holder-run-url"
ANNOTATION_HOLDER_HOST = "bodywork.dev/holder-host"
ANNOTATION_HOLDER_COMMIT = "bodywork.dev/holder-commit"
ANNOTATION_HOLDER_COMMAND = "bodywork.dev/holder-command"
ANNOTATION_HOLDER_DEPLOYMENT = "bodywork.dev/holder-deployment-id"


class LockTimeout(ClusterError):
    """Another run holds the pipeline's Lease and kept it longer than we were told to wait (exit 1)."""


@dataclass(frozen=True)
class Holder:
    """Who we are, as written into the Lease for a waiting run to read."""

    identity: str  # unique per invocation
    command: str = "deploy"
    run_url: str = ""
    host: str = ""
    commit: str = ""
    deployment_id: str = ""


def build_holder(
    *, command: str, deployment_id: str, run_url: str = "", commit: str = "", host: str = ""
) -> Holder:
    host = host or socket.gethostname()
    return Holder(
        identity=f"{deployment_id}@{host}"[:128],
        command=command,
        run_url=run_url,
        host=host,
        commit=commit,
        deployment_id=deployment_id,
    )


def lease_name(pipeline_label: str) -> str:
    """``bodywork-<pipeline>``, a valid object name (lower case; a hash keeps altered names distinct)."""
    base = re.sub(r"[^a-z0-9-]+", "-", pipeline_label.lower()).strip("-")
    if base != pipeline_label or len(base) > 50:
        digest = hashlib.sha256(pipeline_label.encode()).hexdigest()[:8]
        base = f"{base[:40].strip('-')}-{digest}".strip("-")
    return f"bodywork-{base}"


class LeaseAction(str, Enum):
    CREATE = "create"  # no Lease yet
    TAKE = "take"  # free, already ours, or abandoned: write ourselves in (PUT with its resourceVersion)
    WAIT = "wait"  # someone else holds it and renews it


@dataclass(frozen=True)
class LeaseDecision:
    action: LeaseAction
    reason: str = ""


def decide_lease(
    current: Mapping[str, Any] | None, *, me: str, unchanged_for_seconds: float
) -> LeaseDecision:
    """What to do with the Lease as read. ``unchanged_for_seconds``: how long, by our own clock,
    we have seen this same holder and renewTime (0 when first seen)."""
    if current is None:
        return LeaseDecision(LeaseAction.CREATE)
    spec = current.get("spec") or {}
    holder = str(spec.get("holderIdentity") or "")
    if not holder:
        return LeaseDecision(LeaseAction.TAKE, "free")
    if holder == me:
        return LeaseDecision(LeaseAction.TAKE, "ours")
    duration = float(spec.get("leaseDurationSeconds") or LEASE_DURATION_SECONDS)
    if unchanged_for_seconds >= duration:
        return LeaseDecision(LeaseAction.TAKE, "expired")
    return LeaseDecision(LeaseAction.WAIT)


def describe_holder(current: Mapping[str, Any]) -> str:
    """``deploy by https://github.com/o/r/actions/runs/1 at 0123abc, since 2026-…Z`` (what we know)."""
    meta = current.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    spec = current.get("spec") or {}
    who = annotations.get(ANNOTATION_HOLDER_RUN_URL) or annotations.get(ANNOTATION_HOLDER_HOST)
    who = who or str(spec.get("holderIdentity") or "unknown")
    parts = [f"{annotations.get(ANNOTATION_HOLDER_COMMAND) or 'a run'} by {who}"]
    commit = str(annotations.get(ANNOTATION_HOLDER_COMMIT) or "")
    if commit:
        parts.append(f"at commit {commit[:12]}")
    since = spec.get("acquireTime")
    if since:
        parts.append(f"since {since}")
    renewed = spec.get("renewTime")
    if renewed:
        parts.append(f"last renewed {renewed}")
    return ", ".join(parts)


def build_lease(
    name: str,
    namespace: str,
    holder: Holder,
    *,
    now: datetime,
    pipeline_label: str,
    previous: Mapping[str, Any] | None = None,
    duration_seconds: int = LEASE_DURATION_SECONDS,
) -> Obj:
    """The Lease naming ``holder`` (a new one, or ``previous`` taken over: transitions counted)."""
    stamp = format_micro_time(now)
    previous_spec = (previous or {}).get("spec") or {}
    ours_already = previous_spec.get("holderIdentity") == holder.identity
    transitions = int(previous_spec.get("leaseTransitions") or 0) + (
        0 if previous is None or ours_already else 1
    )
    metadata: Obj = {
        "name": name,
        "namespace": namespace,
        "labels": {render.LABEL_MANAGED_BY: render.MANAGED_BY, render.LABEL_PART_OF: pipeline_label},
        "annotations": {
            ANNOTATION_HOLDER_COMMAND: holder.command,
            ANNOTATION_HOLDER_RUN_URL: holder.run_url,
            ANNOTATION_HOLDER_HOST: holder.host,
            ANNOTATION_HOLDER_COMMIT: holder.commit,
            ANNOTATION_HOLDER_DEPLOYMENT: holder.deployment_id,
        },
    }
    if previous is not None:
        metadata["resourceVersion"] = (previous.get("metadata") or {}).get("resourceVersion")
    return {
        "apiVersion": LEASE.api_version,
        "kind": LEASE.kind,
        "metadata": metadata,
        "spec": {
            "holderIdentity": holder.identity,
            "leaseDurationSeconds": duration_seconds,
            "acquireTime": previous_spec.get("acquireTime") if ours_already else stamp,
            "renewTime": stamp,
            "leaseTransitions": transitions,
        },
    }


def format_micro_time(moment: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 in UTC with microseconds."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


# ------------------------------------------------------------------------------------ the shell


class PipelineLock:
    """Holds the Lease from ``acquire`` to ``release``, renewed by a background thread."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        pipeline_label: str,
        holder: Holder,
        duration_seconds: int = LEASE_DURATION_SECONDS,
        poll_seconds: float = LOCK_POLL_SECONDS,
        report: Callable[[str], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.cluster = cluster
        self.namespace = namespace
        self.name = lease_name(pipeline_label)
        self.pipeline_label = pipeline_label
        self.holder = holder
        self.duration_seconds = duration_seconds
        self.poll_seconds = poll_seconds
        self.report = report or (lambda _line: None)
        self._monotonic = monotonic
        self._now = now
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lease: Obj | None = None
        self._lock = threading.Lock()
        self.waited_seconds = 0.0
        self.first_holder = False  # the Lease did not exist: no run has held this pipeline here before
        self.lost = ""  # set if another run took the Lease from us (we stopped renewing too long)
        self.on_lost: Callable[[], None] = lambda: None  # the holder stops its work when this is called

    def acquire(self, *, timeout_seconds: float, cancel: threading.Event | None = None) -> bool:
        """Hold the Lease; False if cancelled while waiting. Raises ``LockTimeout`` naming the holder."""
        started = self._monotonic()
        seen: tuple[str, str] | None = None
        seen_since = started
        last_report = -LOCK_REPORT_EVERY_SECONDS
        while True:
            current = self.cluster.read_object(LEASE, self.name, namespace=self.namespace)
            now = self._monotonic()
            spec = (current or {}).get("spec") or {}
            key = (str(spec.get("holderIdentity") or ""), str(spec.get("renewTime") or ""))
            if key != seen:
                seen, seen_since = key, now
            decision = decide_lease(current, me=self.holder.identity, unchanged_for_seconds=now - seen_since)
            try:
                if decision.action is LeaseAction.CREATE:
                    self._lease = self.cluster.create_object(self._build(None), is_ours=self._is_mine)
                    self.first_holder = True
                    break
                if decision.action is LeaseAction.TAKE:
                    assert current is not None
                    self._lease = self.cluster.replace_object(self._build(current))
                    if decision.reason == "expired":
                        self.report(
                            f"took over the lock {self.name}: {describe_holder(current)} stopped renewing it"
                        )
                    break
            except ClusterConflict:
                continue  # someone else wrote it between our read and our write: look again
            assert current is not None
            waited = now - started
            if waited >= timeout_seconds:
                raise LockTimeout(
                    f"another run holds pipeline {self.pipeline_label!r} in namespace {self.namespace!r}: "
                    f"{describe_holder(current)}; gave up after waiting {waited:.0f}s (lock timeout "
                    f"{timeout_seconds:.0f}s). Nothing was applied. Re-run when it has finished, or raise "
                    "the lock timeout (--lock-timeout / lock-timeout-seconds)",
                    verb="acquire",
                    resource="leases.coordination.k8s.io",
                    name=self.name,
                    namespace=self.namespace,
                    reason="LockTimeout",
                )
            if now - last_report >= LOCK_REPORT_EVERY_SECONDS:
                last_report = now
                self.report(
                    f"waiting for the lock {self.name}: held by {describe_holder(current)} "
                    f"(waiting up to {timeout_seconds - waited:.0f}s more)"
                )
            pause = min(self.poll_seconds, max(timeout_seconds - waited, 0.0))
            if cancel is not None:
                if cancel.wait(pause):
                    return False
            else:
                time.sleep(pause)
        self.waited_seconds = self._monotonic() - started
        self._thread = threading.Thread(target=self._renew_loop, name=f"lease-{self.name}", daemon=True)
        self._thread.start()
        return True

    def _is_mine(self, found: Obj) -> bool:
        return str((found.get("spec") or {}).get("holderIdentity") or "") == self.holder.identity

    def _build(self, previous: Obj | None) -> Obj:
        return build_lease(
            self.name,
            self.namespace,
            self.holder,
            now=self._now(),
            pipeline_label=self.pipeline_label,
            previous=previous,
            duration_seconds=self.duration_seconds,
        )

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.duration_seconds / RENEW_EVERY_FRACTION):
            try:
                self._renew()
            except ClusterError as exc:  # an outage: the next round tries again; the deploy reports it
                self.report(f"could not renew the lock {self.name}: {exc}")

    def _renew(self) -> None:
        with self._lock:
            lease = self._lease
            if lease is None or self.lost:
                return
            try:
                self._lease = self.cluster.replace_object(self._build(lease))
            except ClusterConflict:
                current = self.cluster.read_object(LEASE, self.name, namespace=self.namespace)
                if current is not None and self._is_mine(current):
                    self._lease = self.cluster.replace_object(self._build(current))
                else:
                    self.lost = describe_holder(current) if current is not None else "the Lease was deleted"
                    self.report(f"lost the lock {self.name} to {self.lost}; stopping")
                    self.on_lost()

    def release(self) -> None:
        """Stop renewing and free the Lease (holder emptied; a Lease already gone is fine)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        with self._lock:
            lease, self._lease = self._lease, None
        if lease is None or self.lost:
            return
        try:
            self._free(lease)
        except ClusterConflict:
            # Written since we last did (an annotation, a renewal still in flight when we stopped the
            # thread): free it from a fresh read if it is still ours, or the next run waits a minute.
            try:
                current = self.cluster.read_object(LEASE, self.name, namespace=self.namespace)
                if current is not None and self._is_mine(current):
                    self._free(current)
            except ClusterError as exc:
                self._report_kept(exc)
        except ClusterError as exc:
            if exc.status != 404:  # 404: the namespace, Lease and all, was deleted: nothing to free
                self._report_kept(exc)

    def _free(self, lease: Obj) -> None:
        freed = self._build(lease)
        freed["spec"]["holderIdentity"] = ""
        self.cluster.replace_object(freed)

    def _report_kept(self, exc: ClusterError) -> None:
        self.report(
            f"could not free the lock {self.name} ({exc}); the next run waits until it expires "
            f"({self.duration_seconds}s without renewal)"
        )


@contextlib.contextmanager
def hold_pipeline_lock(
    cluster: Cluster,
    *,
    namespace: str,
    pipeline_label: str,
    holder: Holder,
    timeout_seconds: float,
    cancel: threading.Event | None = None,
    report: Callable[[str], None] | None = None,
    duration_seconds: int = LEASE_DURATION_SECONDS,
) -> Iterator[PipelineLock | None]:
    """The pipeline's Lease for the block (None if cancelled while waiting for it)."""
    lock = PipelineLock(
        cluster,
        namespace=namespace,
        pipeline_label=pipeline_label,
        holder=holder,
        duration_seconds=duration_seconds,
        report=report,
    )
    if not lock.acquire(timeout_seconds=timeout_seconds, cancel=cancel):
        yield None
        return
    try:
        yield lock
    finally:
        lock.release()
