"""Hypothesis profiles, and Ctrl+C for the programs the tests start.

Hypothesis: random exploration on developer machines, a fixed search in CI.

A property test that finds a new counter-example should fail on the machine of whoever is changing
the code, not turn an unrelated CI run red; CI (``.ci/run``) selects the ``ci`` profile. Neither
profile has a deadline: the machines are shared, and these tests check behaviour, not speed.

Ctrl+C: a shell without job control starts ``cmd &`` with SIGINT ignored, and an ignored signal stays
ignored in every child, so the tests that press Ctrl+C on a program would wait for it forever. The
suite gives SIGINT its default handling back; a handler (unlike "ignored") is reset for each program
it starts, so they get Ctrl+C as they would in a terminal.
"""

from __future__ import annotations

import os
import signal

import pytest
from hypothesis import settings

PROFILES = {"ci": {"derandomize": True, "database": None}, "dev": {}}
for _name, _options in PROFILES.items():
    settings.register_profile(_name, deadline=None, print_blob=True, **_options)

_selected = os.environ.get("HYPOTHESIS_PROFILE") or "dev"
if _selected not in PROFILES:
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE={_selected!r}: choose one of {', '.join(PROFILES)}")
settings.load_profile(_selected)

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
