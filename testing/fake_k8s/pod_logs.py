"""Pod logs as the kubelet serves them through the API server.

Query parameters: ``container``, ``tailLines``, ``limitBytes``, ``previous``, ``sinceSeconds`` and
``follow``. Every line carries the time it was written: a scripted line (``Scenario.logs``) the time
its container instance started (``startedAt`` of its state, or of ``lastState`` for ``previous``), a
line a test appends (``FakeCluster.append_log``) the time it was appended or the time the test gives.
``sinceSeconds`` keeps the lines written since then. ``follow`` sends what exists, then each appended
line as it comes, and ends once the container instance stops running (it terminated or restarted, or
its pod went), as the kubelet's stream does.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from .resources import resolve
from .store import ApiError

if TYPE_CHECKING:
    from .controllers import Controllers
    from .store import Store

PODS = resolve("pods")
# How often a followed stream looks at its container's state between appended lines (which wake it
# at once): the kubelet notices a container's end by itself too.
FOLLOW_CHECK_SECONDS = 0.05


@dataclass(frozen=True)
class LogLine:
    written_at: float  # epoch seconds
    text: str


@dataclass(frozen=True)
class FollowedLog:
    """A followed container instance: where it is, and what was sent when the stream opened."""

    namespace: str
    pod: str
    uid: str
    container: str
    restart_count: int
    first: tuple[str, ...]
    appended_seen: int


def _epoch(stamp: str | None) -> float:
    if not stamp:
        return 0.0
    return datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def _first(query: dict, key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


class PodLogs:
    """What each container wrote: scripted lines plus lines appended by tests."""

    def __init__(self, store: Store, controllers: Controllers) -> None:
        self._store = store
        self._controllers = controllers
        self._appended: dict[tuple[str, str, str], list[LogLine]] = {}  # (namespace, pod uid, container)
        self._cond = threading.Condition()

    def append(
        self, namespace: str, pod: str, container: str, text: str, written_at: float | None = None
    ) -> None:
        """Add a line to the current instance of ``container`` in ``pod`` (followers get it at once)."""
        uid = self._store.get(PODS, namespace, pod)["metadata"]["uid"]
        with self._cond:
            self._appended.setdefault((namespace, uid, container), []).append(
                LogLine(time.time() if written_at is None else written_at, text)
            )
            self._cond.notify_all()

    def _container(self, pod: dict, requested: str | None) -> str:
        main = [c["name"] for c in pod["spec"].get("containers") or []]
        return requested or (main[0] if len(main) == 1 else "")

    def _lines(self, namespace: str, name: str, query: dict) -> tuple[list[LogLine], dict, str, int]:
        """The lines of the requested instance, filtered by ``sinceSeconds``; the pod, container and
        how many appended lines there were."""
        previous = _first(query, "previous") == "true"
        requested = _first(query, "container")
        scripted = self._controllers.pod_log(namespace, name, requested, previous)  # raises the 400s
        pod = self._store.get(PODS, namespace, name)
        container = self._container(pod, requested)
        status = pod.get("status") or {}
        statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        cs = next((s for s in statuses if s.get("name") == container), {})
        state = (cs.get("lastState") if previous else cs.get("state")) or {}
        started = _epoch(next((s.get("startedAt") for s in state.values() if isinstance(s, dict)), None))
        lines = [LogLine(started, text) for text in scripted]
        with self._cond:
            appended = (
                []
                if previous
                else list(self._appended.get((namespace, pod["metadata"]["uid"], container), []))
            )
        since = _first(query, "sinceSeconds")
        kept = [*lines, *appended]
        if since is not None:
            cutoff = time.time() - int(since)
            kept = [line for line in kept if line.written_at >= cutoff]
        return kept, pod, container, len(appended)

    def text(self, namespace: str, name: str, query: dict) -> str:
        lines = [line.text for line in self._lines(namespace, name, query)[0]]
        tail = _first(query, "tailLines")
        if tail is not None:
            lines = lines[-int(tail) :] if int(tail) > 0 else []
        limit = _first(query, "limitBytes")
        text = "".join(line + "\n" for line in lines)
        return text[: int(limit)] if limit else text

    def open_follow(self, namespace: str, name: str, query: dict) -> FollowedLog:
        """Check the request and take what exists now (raises the API's errors before any byte is sent)."""
        if _first(query, "previous") == "true":
            raise ApiError(400, "BadRequest", "the fake apiserver cannot follow a previous container's log")
        lines, pod, container, seen = self._lines(namespace, name, query)
        texts = [line.text for line in lines]
        tail = _first(query, "tailLines")
        if tail is not None:
            texts = texts[-int(tail) :] if int(tail) > 0 else []
        cs = self._status(pod, container)
        return FollowedLog(
            namespace,
            name,
            pod["metadata"]["uid"],
            container,
            int(cs.get("restartCount") or 0),
            tuple(texts),
            seen,
        )

    def _status(self, pod: dict, container: str) -> dict:
        status = pod.get("status") or {}
        statuses = [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]
        return next((s for s in statuses if s.get("name") == container), {})

    def _running(self, followed: FollowedLog) -> bool:
        pod = self._store.find(PODS, followed.namespace, followed.pod)
        if pod is None or pod["metadata"]["uid"] != followed.uid:
            return False
        cs = self._status(pod, followed.container)
        return (
            "running" in (cs.get("state") or {})
            and int(cs.get("restartCount") or 0) == followed.restart_count
        )

    def follow(self, followed: FollowedLog, send: Callable[[str], None], gone: Callable[[], bool]) -> None:
        """Send the first lines, then appended ones as they come, until the instance stops running."""
        for text in followed.first:
            send(text)
        key = (followed.namespace, followed.uid, followed.container)
        seen = followed.appended_seen
        while True:
            running = self._running(followed)  # before reading: lines written up to its end are sent
            with self._cond:
                fresh = self._appended.get(key, [])[seen:]
                if not fresh and running:
                    self._cond.wait(FOLLOW_CHECK_SECONDS)
                    fresh = self._appended.get(key, [])[seen:]
            seen += len(fresh)
            for line in fresh:
                send(line.text)
            if not running or gone():
                return
