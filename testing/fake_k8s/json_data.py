"""Copying the fake's objects: JSON-shaped data (dicts, lists, strings, numbers, booleans, None)."""

from __future__ import annotations

import pickle
from typing import TypeVar

T = TypeVar("T")


def deep_copy(data: T) -> T:
    """A deep copy of JSON-shaped ``data``, as ``copy.deepcopy`` makes it but in C: a pickle round trip
    is about 4 times faster on a pod-sized object (copy.deepcopy was 28 % of the fake's CPU at 1,000
    stages), which lets the fake keep up with the tool it tests."""
    return pickle.loads(pickle.dumps(data, pickle.HIGHEST_PROTOCOL))
