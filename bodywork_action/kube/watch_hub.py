"""Waiting by watching: one label-selected watch per kind per deployment, shared by every running stage.

Shell (cluster I/O through ``client.py``). A ``WatchHub`` opens, the first time a stage needs a kind,
ONE ``ObjectWatch`` of that kind in the deployment's namespace, selected by the pipeline's label; one
thread pumps it, routing each object by the stage label the renderer stamps on every object. A waiting
stage is a subscription, not a thread: its feeds (``Feed``) receive only their own stage's objects,
first a ``LISTED`` snapshot, then each change, exactly what a watch of its own used to deliver, so the
verdict functions see the same inputs, event by event. ONE dispatching thread folds those events into
each subscription's caches (``EventFold``), asks its ``decide`` and hands the final verdict on; it also
ends subscriptions whose deadline passed or whose run was cancelled. So the threads are O(1) in the
number of stages: one per kind watched, and one dispatcher.

An error of a shared watch (refused, the cluster gone for longer than the deploy may wait) reaches every
subscription on that kind; the next stage to need the kind opens a fresh watch. 410 Gone relists inside
``ObjectWatch``; the new snapshot reaches every subscription.

``follow_events`` is the same fold as a blocking loop over a mailbox, for a watch of its own (a namespace
being deleted, ``deploy.wait_for_verdict``).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from bodywork_action.interruptible import result_of
from bodywork_action.kube.client import Cluster, Kind, ObjectWatch, WatchEvent
from bodywork_action.reconcile import Obj, object_name
from bodywork_action.verdicts import Phase, Verdict

Caches = Mapping[str, Mapping[str, Obj]]
Mailbox = queue.SimpleQueue[tuple[str, WatchEvent | BaseException]]
# What a subscription ends with: the final verdict, None (cancelled) or the error that ended it.
Outcome = Verdict | None | BaseException

# How quickly Ctrl+C / SIGTERM and deadlines are noticed while waiting. Cluster state arrives by watch
# events and is acted on the moment it arrives; this timer only re-checks the clock and the cancel flag.
CANCEL_CHECK_INTERVAL_SECONDS = 0.2
WATCH_THREAD_JOIN_SECONDS = 2.0


def timeout_verdict(deadline_seconds: float) -> Verdict:
    return Verdict(Phase.FAILED, "Timeout", f"no verdict from the cluster within {deadline_seconds:.0f}s")


class EventFold:
    """One cache per key, kept from watch events; ``decide`` is asked after each change once every key
    has been listed (and, with ``must_see``, once that cache has held something: an object created just
    before may reach a shared watch after its listing)."""

    def __init__(
        self, keys: Collection[str], decide: Callable[[Caches], Verdict], must_see: str = ""
    ) -> None:
        self.caches: dict[str, dict[str, Obj]] = {key: {} for key in keys}
        self._decide = decide
        self._listed: set[str] = set()
        self._must_see = must_see
        self._seen = not must_see

    def apply(self, key: str, event: WatchEvent) -> Verdict | None:
        """Fold ``event`` into the cache ``key``; the final verdict, if this change brought one."""
        cache = self.caches[key]
        if event.type == "LISTED":
            cache.clear()
            cache.update({object_name(o): o for o in event.objects})
            self._listed.add(key)
        elif event.type == "DELETED":
            cache.pop(object_name(event.object), None)
        else:
            cache[object_name(event.object)] = event.object
        self._seen = self._seen or bool(self.caches.get(self._must_see))
        if self._seen and len(self._listed) == len(self.caches):
            verdict = self._decide(self.caches)
            if verdict.done:
                return verdict
        return None


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
    """``EventFold`` over a mailbox, blocking: the first final verdict, a "Timeout" failure after
    ``deadline_seconds``, or None if ``cancel`` was set. An error put in the mailbox is raised here."""
    fold = EventFold(keys, decide, must_see)
    deadline = None if deadline_seconds is None else clock() + deadline_seconds
    while True:
        if cancel.is_set():
            return None
        wait = CANCEL_CHECK_INTERVAL_SECONDS
        if deadline is not None:
            remaining = deadline - clock()
            if remaining <= 0:
                assert deadline_seconds is not None
                return timeout_verdict(deadline_seconds)
            wait = min(wait, remaining)
        try:
            key, event = mailbox.get(timeout=wait)
        except queue.Empty:
            continue
        if isinstance(event, BaseException):
            raise event
        verdict = fold.apply(key, event)
        if verdict is not None:
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
class _Subscription:
    feeds: tuple[Feed, ...]
    fold: EventFold
    then: Callable[[Outcome], None]
    cancel: threading.Event
    deadline_seconds: float | None
    deadline: float | None  # on the hub's clock
    delivered: dict[str, set[str]] = field(default_factory=dict)  # names in each feed's cache
    done: bool = False

    def listing(self, feed: Feed, objects: Iterable[Obj]) -> WatchEvent:
        mine = tuple(o for o in objects if feed.accepts(o))
        self.delivered[feed.key] = {object_name(o) for o in mine}
        return WatchEvent("LISTED", objects=mine)

    def change(self, feed: Feed, event: WatchEvent) -> WatchEvent | None:
        names = self.delivered.setdefault(feed.key, set())
        name = object_name(event.object)
        if event.type != "DELETED" and feed.accepts(event.object):
            names.add(name)
            return event
        if name in names:  # gone, or no longer selected (as a label-selected watch reports it)
            names.discard(name)
            return WatchEvent("DELETED", event.object)
        return None


@dataclass(eq=False)
class _Pump:
    watch: ObjectWatch
    thread: threading.Thread | None = None
    listed: bool = False
    objects: dict[str, dict[str, Obj]] = field(default_factory=dict)  # stage label → name → object


_Delivery = tuple[_Subscription, str, WatchEvent | BaseException]


class WatchHub:
    """The deployment's shared watches (one per kind, label-selected), routed to the stages waiting."""

    def __init__(
        self,
        cluster: Cluster,
        *,
        namespace: str,
        label_selector: str,
        stage_label: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._cluster = cluster
        self._namespace = namespace
        self._label_selector = label_selector
        self._stage_label = stage_label
        self._clock = clock
        self._lock = threading.Lock()
        self._pumps: dict[str, _Pump] = {}  # by kind
        self._subscribers: dict[tuple[str, str], list[tuple[_Subscription, Feed]]] = {}  # (kind, stage) →
        self._active: set[_Subscription] = set()  # for the dispatcher's deadline and cancel checks
        self._deliveries: queue.SimpleQueue[_Delivery | None] = queue.SimpleQueue()
        self._dispatcher: threading.Thread | None = None
        self._closed = False
        self.watches_opened = 0  # shared watches started (a new one only after one failed)

    def start(self, kinds: Iterable[Kind]) -> None:
        """Open the shared watch of each kind not watched yet (its listing overlaps what comes next)."""
        with self._lock:
            for kind in kinds:
                self._pump_of(kind)

    def subscribe(
        self,
        feeds: Iterable[Feed],
        decide: Callable[[Caches], Verdict],
        then: Callable[[Outcome], None],
        *,
        cancel: threading.Event,
        deadline_seconds: float | None,
        must_see: str = "",
    ) -> None:
        """Fold the feeds' objects, as the shared watches see them, until ``decide`` gives a final
        verdict, ``deadline_seconds`` pass (a "Timeout" failure), ``cancel`` is set (None) or a watch
        fails (its error); then call ``then`` with that outcome, once, on the dispatching thread: it
        must not block (hand real work to a thread pool)."""
        feeds = tuple(feeds)
        subscription = _Subscription(
            feeds,
            EventFold([feed.key for feed in feeds], decide, must_see),
            then,
            cancel,
            deadline_seconds,
            None if deadline_seconds is None else self._clock() + deadline_seconds,
        )
        with self._lock:
            if self._dispatcher is None:
                if self._closed:
                    raise RuntimeError("the deployment's watches were already closed")
                self._dispatcher = threading.Thread(
                    target=self._dispatch, name="watch-dispatcher", daemon=True
                )
                self._dispatcher.start()
            self._active.add(subscription)
            for feed in feeds:
                pump = self._pump_of(feed.kind)
                self._subscribers.setdefault((feed.kind.kind, feed.stage), []).append((subscription, feed))
                if pump.listed:
                    listing = subscription.listing(feed, pump.objects.get(feed.stage, {}).values())
                    self._deliveries.put((subscription, feed.key, listing))

    def wait(
        self,
        feeds: Iterable[Feed],
        decide: Callable[[Caches], Verdict],
        *,
        cancel: threading.Event,
        deadline_seconds: float | None,
        must_see: str = "",
    ) -> Verdict | None:
        """``subscribe``, blocking this thread until the outcome (an error is raised here)."""
        outcome: Future[Verdict | None] = Future()

        def then(result: Outcome) -> None:
            if isinstance(result, BaseException):
                outcome.set_exception(result)
            else:
                outcome.set_result(result)

        self.subscribe(
            feeds, decide, then, cancel=cancel, deadline_seconds=deadline_seconds, must_see=must_see
        )
        return result_of(outcome)  # the caller may be the main thread, which must see Ctrl+C

    def close(self) -> None:
        """Close every watch and stop the dispatcher; a subscription still open ends with an error."""
        with self._lock:
            self._closed = True
            pumps = list(self._pumps.values())
            self._pumps.clear()
            dispatcher = self._dispatcher
        for pump in pumps:
            pump.watch.close()
        self._deliveries.put(None)
        for thread in [*(pump.thread for pump in pumps), dispatcher]:
            if thread is not None:
                thread.join(WATCH_THREAD_JOIN_SECONDS)

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
                target=self._pump, args=(kind, pump), name=f"watch-{kind.plural}", daemon=True
            )
            self._pumps[kind.kind] = pump
            self.watches_opened += 1
            pump.thread.start()
        return pump

    def _stage_of(self, obj: Obj) -> str:
        return str(((obj.get("metadata") or {}).get("labels") or {}).get(self._stage_label, ""))

    def _unsubscribe(self, subscription: _Subscription) -> None:
        self._active.discard(subscription)
        for feed in subscription.feeds:
            key = (feed.kind.kind, feed.stage)
            subscribed = self._subscribers.get(key, [])
            subscribed[:] = [(s, f) for s, f in subscribed if s is not subscription]
            if not subscribed:
                self._subscribers.pop(key, None)

    # --- the pumping threads: one per kind ----------------------------------------------------
    def _pump(self, kind: Kind, pump: _Pump) -> None:
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
                for (subscribed_kind, _), subscribed in self._subscribers.items():
                    if subscribed_kind == kind.kind:
                        for subscription, feed in subscribed:
                            self._deliveries.put((subscription, feed.key, exc))

    def _route(self, kind: Kind, pump: _Pump, event: WatchEvent) -> None:
        if event.type == "LISTED":
            pump.objects = {}
            for obj in event.objects:
                pump.objects.setdefault(self._stage_of(obj), {})[object_name(obj)] = obj
            pump.listed = True
            for (subscribed_kind, stage), subscribed in self._subscribers.items():
                if subscribed_kind == kind.kind:
                    for subscription, feed in subscribed:
                        listing = subscription.listing(feed, pump.objects.get(stage, {}).values())
                        self._deliveries.put((subscription, feed.key, listing))
            return
        stage, name = self._stage_of(event.object), object_name(event.object)
        if event.type == "DELETED":
            pump.objects.get(stage, {}).pop(name, None)
        else:
            pump.objects.setdefault(stage, {})[name] = event.object
        for subscription, feed in self._subscribers.get((kind.kind, stage), ()):
            change = subscription.change(feed, event)
            if change is not None:
                self._deliveries.put((subscription, feed.key, change))

    # --- the dispatching thread: every subscription's fold, deadline and cancel ----------------
    def _dispatch(self) -> None:
        next_check = self._clock() + CANCEL_CHECK_INTERVAL_SECONDS
        while True:
            try:
                delivery = self._deliveries.get(timeout=max(0.0, next_check - self._clock()))
            except queue.Empty:
                pass
            else:
                if delivery is None:  # closed
                    break
                subscription, key, event = delivery
                if not subscription.done:
                    self._fold(subscription, key, event)
            if self._clock() >= next_check:
                self._check_deadlines_and_cancel()
                next_check = self._clock() + CANCEL_CHECK_INTERVAL_SECONDS
        with self._lock:
            left = list(self._active)
        for subscription in left:
            self._end(subscription, RuntimeError("the deployment's watches were closed while a stage waited"))

    def _fold(self, subscription: _Subscription, key: str, event: WatchEvent | BaseException) -> None:
        if isinstance(event, BaseException):
            self._end(subscription, event)
            return
        try:
            verdict = subscription.fold.apply(key, event)
        except BaseException as exc:  # decide failed: the stage's outcome, not the dispatcher's end
            self._end(subscription, exc)
            return
        if verdict is not None:
            self._end(subscription, verdict)

    def _check_deadlines_and_cancel(self) -> None:
        now = self._clock()
        with self._lock:
            active = list(self._active)
        for subscription in active:
            if subscription.cancel.is_set():
                self._end(subscription, None)
            elif subscription.deadline is not None and now >= subscription.deadline:
                assert subscription.deadline_seconds is not None
                self._end(subscription, timeout_verdict(subscription.deadline_seconds))

    def _end(self, subscription: _Subscription, outcome: Outcome) -> None:
        if subscription.done:
            return
        subscription.done = True
        with self._lock:
            self._unsubscribe(subscription)
        subscription.then(outcome)
