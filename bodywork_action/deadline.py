"""An overall time limit on a run (the CLI's ``--timeout``, the action's ``timeout-minutes``).

Past the limit the run is stopped the way Ctrl+C stops it (what still runs is stopped, every result is
still reported), and the result is then a failure that says the limit was reached, not a cancel.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable, Iterator

from bodywork_action.results import DeploymentResult, DeploymentStatus


class Deadline:
    """``seconds`` (None: no limit) for the block run under ``running``; ``label`` names the limit in
    the result ("--timeout 15m", "timeout-minutes (60)")."""

    def __init__(self, seconds: float | None, label: str) -> None:
        self.seconds = seconds
        self.label = label
        self.timed_out = threading.Event()

    @contextlib.contextmanager
    def running(self, stop: Callable[[], None]) -> Iterator[None]:
        """Call ``stop`` (set the run's cancel, interrupt its processes) if the block outlasts the limit."""
        if self.seconds is None:
            yield
            return

        def time_is_up() -> None:
            self.timed_out.set()
            stop()

        timer = threading.Timer(self.seconds, time_is_up)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def apply(self, result: DeploymentResult) -> DeploymentResult:
        """The run's result, a failure saying the limit was reached if it was stopped by it."""
        if not self.timed_out.is_set() or result.status is not DeploymentStatus.CANCELLED:
            return result
        return dataclasses.replace(
            result,
            status=DeploymentStatus.FAILED,
            message=f"{self.label} reached; {result.message}".rstrip("; "),
        )
