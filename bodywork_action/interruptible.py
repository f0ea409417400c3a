"""Blocking waits on the main thread that still let Ctrl+C and SIGTERM in.

Python runs a signal's handler only on the main thread, between bytecodes. The kernel hands a process's
signal to any one of its threads, and a signal taken by another thread (a watch, a stage worker) does
not wake the main thread from a wait without a timeout on a lock, a queue or a future: the handler,
which sets the run's cancel, would wait for the very thing it is meant to stop. Waiting in short slices
lets it run within one slice.
"""

from __future__ import annotations

import concurrent.futures
import queue
import threading
from concurrent.futures import Future
from typing import TypeVar

T = TypeVar("T")

# How long a signal taken by another thread may wait for its handler to run on the main thread.
SLICE_SECONDS = 0.2


def next_item(source: queue.SimpleQueue[T] | queue.Queue[T]) -> T:
    """``source.get()`` that a signal's handler can interrupt (by raising) or run during."""
    while True:
        try:
            return source.get(timeout=SLICE_SECONDS)
        except queue.Empty:
            continue


def result_of(future: Future[T]) -> T:
    """``future.result()`` that a signal's handler can interrupt (by raising) or run during."""
    while not future.done():
        concurrent.futures.wait((future,), timeout=SLICE_SECONDS)
    return future.result()


def wait_for(event: threading.Event) -> None:
    """``event.wait()`` that a signal's handler can interrupt (by raising) or run during."""
    while not event.wait(SLICE_SECONDS):
        continue
