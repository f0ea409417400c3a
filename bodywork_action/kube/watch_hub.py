"""Waiting by watching: one label-selected watch per kind per deployment, shared by every running stage.

Shell (cluster I/O through ``client.py``). A ``WatchHub`` opens, the first time a stage needs a kind,
ONE ``ObjectWatch`` of that kind in the deployment's namespace, selected by the pipeline's label; one
thread pumps it into per-stage state, keyed by the stage label the renderer stamps on every object.
A stage waits (``WatchHub.wait``) with its own mailbox, fed only its own stage's objects: first a
``LISTED`` snapshot of them, then each change, exactly what a watch of its own used to deliver (so the
verdict functions see the same inputs, event by event). It blocks on that mailbox alone, so a change
wakes only the stages it concerns. An error of a shared watch (refused, the cluster gone for longer
than the deploy may wait) reaches every stage waiting on it; the next stage to need the kind opens a
fresh watch. 410 Gone relists inside ``ObjectWatch``; the new snapshot reaches every waiter.

``follow_events`` is the waiting loop itself (deadline, cancel, one ``decide`` per event), also used by
``wait_for_verdict`` for watches of their own (a namespace being deleted).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field

from bodywork_action.kube.client import Cluster, Kind, ObjectWatch, WatchEvent
from bodywork_action.reconcile import Obj, object_name
from bodywork_action.verdicts import Phase, Verdict

Caches = Mapping[str, Mapping[str, Obj]]
Mailbox = queue.SimpleQueue[tuple[str, WatchEvent | BaseException]]

# How quickly Ctrl+C / SIGTERM is noticed while waiting. Cluster state arrives by watch events and is
# acted on the moment it arrives; this timer only re-checks the local cancel flag.
CANCEL_CHECK_INTERVAL_SECONDS = 0.2
WATCH_THREAD_JOIN_SECONDS = 2.0


def follow_events(
    mailbox: Mailbox,
    keys: Collection[str],
    decide: Callable[[Caches], Verdict],
    *,
    cancel: threading.Event,
    deadline_seconds: float | None,
    must_see: str = "",
    clock: Callable[[], float] = time.monotonic,
) -> Verdict | None:
    """Keep one cache per key from the mailbox's events and ask ``decide`` after each change, once every
    key has been listed (and, with ``must_see``, once that cache has held something: an object created
    just before may reach a shared watch after its listing).

    Returns the first final verdict, a "Timeout" failure after ``deadline_seconds``, or None if
    ``cancel`` was set. An error put in the mailbox is raised here.
    """
    caches: dict[str, dict[str, Obj]] = {key: {} for key in keys}
    listed: set[str] = set()
    seen = not must_see
    deadline = None if deadline_seconds is None else clock() + deadline_seconds
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
            key, event = mailbox.get(timeout=wait)
        except queue.Empty:
            continue
        if isinstance(event, BaseException):
            raise event
        cache = caches[key]
        if event.type == "LISTED":
            cache.clear()
            cache.update({object_name(o): o for o in event.objects})
            listed.add(key)
        elif event.type == "DELETED":
            cache.pop(object_name(event.object), None)
        else:
            cache[object_name(event.object)] = event.object
        seen = seen or bool(caches.get(must_see))
        if seen and len(listed) == len(caches):
            verdict = decide(caches)
            if verdict.done:
                return verdict


# ------------------------------------------------------------------------------------ the hub


@dataclass(frozen=True)
class Feed:
    """What one waiting stage sees of one kind: the objects of ``stage`` that ``accepts`` admits (the
    Job or Deployment by name, the pods by their labels), as the cache ``key`` of its ``decide``."""

    key: str
    kind: Kind
    stage: str
    accepts: Callable[[Obj], bool]


def named(name: str) -> Callable[[Obj], bool]:
    return lambda obj: object_name(obj) == name


def labelled(labels: Mapping[str, str]) -> Callable[[Obj], bool]:
    """Objects carrying every one of ``labels`` (what a label selector of equalities selects)."""
    wanted = dict(labels)

    def accepts(obj: Obj) -> bool:
        have = (obj.get("metadata") or {}).get("labels") or {}
        return all(have.get(k) == v for k, v in wanted.items())

    return accepts


@dataclass(eq=False)
class _Waiter:
    feeds: tuple[Feed, ...]
    mailbox: Mailbox = field(default_factory=queue.SimpleQueue)
    delivered: dict[str, set[str]] = field(default_factory=dict)  # names in each feed's cache

    def send_listing(self, feed: Feed, objects: Iterable[Obj]) -> None:
        mine = tuple(o for o in objects if feed.accepts(o))
        self.delivered[feed.key] = {object_name(o) for o in mine}
        self.mailbox.put((feed.key, WatchEvent("LISTED", objects=mine)))

    def send_change(self, feed: Feed, event: WatchEvent) -> None:
        names = self.delivered.setdefault(feed.key, set())
        name = object_name(event.object)
        if event.type != "DELETED" and feed.accepts(event.object):
            names.add(name)
            self.mailbox.put((feed.key, event))
        elif name in names:  # gone, or no longer selected (as a label-selected watch reports it)
            names.discard(name)
            self.mailbox.put((feed.key, WatchEvent("DELETED", event.object)))


@dataclass(eq=False)
class _Pump:
    watch: ObjectWatch
    thread: threading.Thread | None = None
    listed: bool = False
    objects: dict[str, dict[str, Obj]] = field(default_factory=dict)  # stage label → name → object


class WatchHub:
    """The deployment's shared watches (one per kind, label-selected), routed to the stages waiting."""

    def __init__(self, cluster: Cluster, *, namespace: str, label_selector: str, stage_label: str) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._label_selector = label_selector
        self._stage_label = stage_label
        self._lock = threading.Lock()
        self._pumps: dict[str, _Pump] = {}  # by kind
        self._waiters: dict[tuple[str, str], list[tuple[_Waiter, Feed]]] = {}  # (kind, stage) → waiters
        self._closed = False
        self.watches_opened = 0  # shared watches started (a new one only after one failed)

    def start(self, kinds: Iterable[Kind]) -> None:
        """Open the shared watch of each kind not watched yet (its listing overlaps what comes next)."""
        with self._lock:
            for kind in kinds:
                self._pump_of(kind)

    def wait(
        self,
        feeds: Iterable[Feed],
        decide: Callable[[Caches], Verdict],
        *,
        cancel: threading.Event,
        deadline_seconds: float | None,
        must_see: str = "",
    ) -> Verdict | None:
        """``follow_events`` over the feeds' objects as the shared watches see them; see there."""
        waiter = _Waiter(tuple(feeds))
        with self._lock:
            for feed in waiter.feeds:
                pump = self._pump_of(feed.kind)
                self._waiters.setdefault((feed.kind.kind, feed.stage), []).append((waiter, feed))
                if pump.listed:
                    waiter.send_listing(feed, pump.objects.get(feed.stage, {}).values())
        try:
            return follow_events(
                waiter.mailbox,
                [feed.key for feed in waiter.feeds],
                decide,
                cancel=cancel,
                deadline_seconds=deadline_seconds,
                must_see=must_see,
            )
        finally:
            with self._lock:
                for feed in waiter.feeds:
                    waiting = self._waiters.get((feed.kind.kind, feed.stage), [])
                    waiting[:] = [(w, f) for w, f in waiting if w is not waiter]
                    if not waiting:
                        self._waiters.pop((feed.kind.kind, feed.stage), None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            pumps = list(self._pumps.values())
            self._pumps.clear()
        for pump in pumps:
            pump.watch.close()
        for pump in pumps:
            if pump.thread is not None:
                pump.thread.join(WATCH_THREAD_JOIN_SECONDS)

    # --- under self._lock -----------------------------------------------------------------------
    def _pump_of(self, kind: Kind) -> _Pump:
        pump = self._pumps.get(kind.kind)
        if pump is None:
            if self._closed:
                raise RuntimeError("the deployment's watches were already closed")
            watch = self._cluster.watch_objects(
                kind, namespace=self._namespace, label_selector=self._label_selector
            )
            pump = _Pump(watch)
            pump.thread = threading.Thread(
                target=self._run, args=(kind, pump), name=f"watch-{kind.plural}", daemon=True
            )
            self._pumps[kind.kind] = pump
            self.watches_opened += 1
            pump.thread.start()
        return pump

    def _stage_of(self, obj: Obj) -> str:
        return str(((obj.get("metadata") or {}).get("labels") or {}).get(self._stage_label, ""))

    # --- the pumping thread ---------------------------------------------------------------------
    def _run(self, kind: Kind, pump: _Pump) -> None:
        try:
            for event in pump.watch:
                with self._lock:
                    self._route(kind, pump, event)
        except BaseException as exc:
            if pump.watch.closed:
                return
            with self._lock:
                if self._pumps.get(kind.kind) is pump:
                    del self._pumps[kind.kind]  # the next stage to need the kind opens a fresh watch
                for (waited_kind, _), waiting in self._waiters.items():
                    if waited_kind == kind.kind:
                        for waiter, feed in waiting:
                            waiter.mailbox.put((feed.key, exc))

    def _route(self, kind: Kind, pump: _Pump, event: WatchEvent) -> None:
        if event.type == "LISTED":
            pump.objects = {}
            for obj in event.objects:
                pump.objects.setdefault(self._stage_of(obj), {})[object_name(obj)] = obj
            pump.listed = True
            for (waited_kind, stage), waiting in self._waiters.items():
                if waited_kind == kind.kind:
                    for waiter, feed in waiting:
                        waiter.send_listing(feed, pump.objects.get(stage, {}).values())
            return
        stage, name = self._stage_of(event.object), object_name(event.object)
        if event.type == "DELETED":
            pump.objects.get(stage, {}).pop(name, None)
        else:
            pump.objects.setdefault(stage, {})[name] = event.object
        for waiter, feed in self._waiters.get((kind.kind, stage), ()):
            waiter.send_change(feed, event)
