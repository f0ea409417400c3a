"""Main-thread waits wake for a signal even when the kernel hands it to another thread.

The signal is sent to a helper thread with ``pthread_kill``; the wait is only ended by that helper 10 s
later (its watchdog). A wait that wakes raises the handler's exception at once; one that doesn't runs
the handler only after the watchdog ended it.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import pytest

from bodywork_action.interruptible import next_item, result_of, wait_for


class Interrupted(Exception):
    pass


def _raise(_signum: int, _frame: object) -> None:
    raise Interrupted


def _queue_wait() -> tuple[Callable[[], object], Callable[[], None]]:
    source: queue.SimpleQueue[str] = queue.SimpleQueue()
    return (lambda: next_item(source)), (lambda: source.put("watchdog"))


def _future_wait() -> tuple[Callable[[], object], Callable[[], None]]:
    future: Future[str] = Future()
    return (lambda: result_of(future)), (lambda: future.set_result("watchdog"))


def _event_wait() -> tuple[Callable[[], object], Callable[[], None]]:
    event = threading.Event()
    return (lambda: wait_for(event)), event.set


@pytest.mark.parametrize("make_wait", [_queue_wait, _future_wait, _event_wait])
def test_a_signal_taken_by_another_thread_interrupts_the_wait(
    make_wait: Callable[[], tuple[Callable[[], object], Callable[[], None]]],
) -> None:
    wait, end_wait = make_wait()
    watchdog_fired = threading.Event()

    def signal_from_another_thread() -> None:
        time.sleep(0.5)  # let the main thread settle into its wait
        signal.pthread_kill(threading.get_ident(), signal.SIGUSR1)  # taken by this thread, not main
        time.sleep(10)
        watchdog_fired.set()
        end_wait()

    previous = signal.signal(signal.SIGUSR1, _raise)
    try:
        threading.Thread(target=signal_from_another_thread, daemon=True).start()
        with pytest.raises(Interrupted):
            wait()
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert not watchdog_fired.is_set(), "the handler ran only once the wait had ended"


def test_the_waits_return_what_they_waited_for() -> None:
    source: queue.SimpleQueue[int] = queue.SimpleQueue()
    source.put(7)
    future: Future[int] = Future()
    future.set_result(8)
    event = threading.Event()
    event.set()
    assert next_item(source) == 7 and result_of(future) == 8
    wait_for(event)
    failed: Future[int] = Future()
    failed.set_exception(TimeoutError("the future's own timeout, not the slice's"))
    with pytest.raises(TimeoutError, match="own timeout"):
        result_of(failed)
