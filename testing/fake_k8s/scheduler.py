"""One thread that runs due actions from a heap: the clock of every simulated controller."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from typing import Any


class Scheduler:
    def __init__(self, on_error: Callable[[BaseException], None]):
        self._heap: list[tuple[float, int, Callable[..., Any], tuple]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._busy = False
        self._on_error = on_error
        self._thread = threading.Thread(target=self._run, name="fake-k8s-controllers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(5)

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        with self._cond:
            heapq.heappush(self._heap, (time.monotonic() + max(0.0, delay), next(self._seq), fn, args))
            self._cond.notify_all()

    def idle(self) -> bool:
        """True when nothing is due right now (future timers may still be pending)."""
        with self._cond:
            return not self._busy and (not self._heap or self._heap[0][0] > time.monotonic())

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopped and (not self._heap or self._heap[0][0] > time.monotonic()):
                    timeout = self._heap[0][0] - time.monotonic() if self._heap else None
                    self._cond.wait(timeout)
                if self._stopped:
                    return
                _, _, fn, args = heapq.heappop(self._heap)
                self._busy = True
            try:
                fn(*args)
            except BaseException as exc:  # keep the clock running; tests see the error
                self._on_error(exc)
            finally:
                with self._cond:
                    self._busy = False
