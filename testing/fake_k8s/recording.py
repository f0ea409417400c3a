"""Request recording and fault injection (both cheap, fault injection off by default)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RequestRecord:
    verb: str  # Kubernetes verb: get, list, watch, create, update, patch, delete, deletecollection
    method: str  # HTTP method
    path: str
    query: str
    group: str | None  # None for non-resource paths (/version, /api, ...)
    resource: str | None  # plural, e.g. "jobs"
    subresource: str | None
    namespace: str | None
    name: str | None
    status: int  # 0 when the connection was dropped on purpose
    fault: str | None = None  # which injected fault answered, if any
    user_agent: str = ""
    body: bytes = field(default=b"", repr=False)  # what the client sent (a dry run's objects, say)


class RequestLog:
    """Thread-safe list of RequestRecord with small query helpers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[RequestRecord] = []

    def append(self, record: RequestRecord) -> None:
        with self._lock:
            self._items.append(record)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __iter__(self) -> Iterator[RequestRecord]:
        with self._lock:
            return iter(list(self._items))

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __getitem__(self, index):
        with self._lock:
            return self._items[index]

    def filter(self, **want) -> list[RequestRecord]:
        """`fake.requests.filter(verb="create", resource="jobs")` — exact-match on any field."""
        return [r for r in self if all(getattr(r, k) == v for k, v in want.items())]

    def count(self, **want) -> int:
        return len(self.filter(**want))


@dataclass
class Faults:
    """Fault injection.  All rates are fractions of matching requests (0..1); all off by default.

    Faults apply to API requests (not to /version, discovery or the service proxy) unless `match`
    says otherwise.  `match(method, path)` narrows them, e.g. `lambda m, p: "/jobs" in p`.
    """

    rate_429: float = 0.0
    retry_after: int = 1
    rate_500: float = 0.0
    rate_503: float = 0.0
    rate_drop: float = 0.0  # close the connection without answering (1.0: open watch streams too)
    latency: float = 0.0  # seconds added before every matching request is handled
    watch_cut_after: int | None = None  # end each watch stream abruptly after this many events
    # with watch_cut_after: send only the first half of that last event, then end the response cleanly
    # (a proxy ending a stream mid-event); the client is left holding a line that is not JSON
    watch_cut_mid_event: bool = False
    match: Callable[[str, str], bool] | None = None
    seed: int | None = 0
    _rng: random.Random = field(default_factory=random.Random, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def reset(self) -> None:
        """Turn every fault off."""
        self.rate_429 = self.rate_500 = self.rate_503 = self.rate_drop = self.latency = 0.0
        self.watch_cut_after = None
        self.watch_cut_mid_event = False
        self.match = None
        self._rng.seed(self.seed)

    def applies(self, method: str, path: str) -> bool:
        return self.match is None or bool(self.match(method, path))

    def pick(self) -> str | None:
        """Which fault (if any) answers this request: '429', '500', '503' or 'drop'."""
        with self._lock:
            x = self._rng.random()
        for name, rate in (
            ("429", self.rate_429),
            ("500", self.rate_500),
            ("503", self.rate_503),
            ("drop", self.rate_drop),
        ):
            if x < rate:
                return name
            x -= rate
        return None
