"""Shared by the test pipeline's stages: write what a stage saw (times, environment) for the tests to read.

The tests pass the folder in ``BW_TEST_OUT``; the stage's name is its script's first argument.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

SEEN_PREFIXES = ("BW_TEST_", "BODYWORK_", "GIT_COMMIT_HASH", "VIRTUAL_ENV")


def record(name: str, **extra: object) -> None:
    """Append one JSON line for ``name``: its times so far, the environment it was given, ``extra``."""
    seen = {k: v for k, v in os.environ.items() if k.startswith(SEEN_PREFIXES)}
    line = {
        "argv": sys.argv[1:],
        "stage": name,
        "time": time.time(),
        "pid": os.getpid(),
        "prefix": sys.prefix,
        "env": seen,
        **extra,
    }
    folder = Path(os.environ["BW_TEST_OUT"])
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.jsonl", "a") as handle:
        handle.write(json.dumps(line) + "\n")
