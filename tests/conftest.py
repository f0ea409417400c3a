"""Hypothesis profiles: random exploration on developer machines, a fixed search in CI.

A property test that finds a new counter-example should fail on the machine of whoever is changing
the code, not turn an unrelated CI run red; CI (``.ci/run``) selects the ``ci`` profile. Neither
profile has a deadline: the machines are shared, and these tests check behaviour, not speed.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

PROFILES = {"ci": {"derandomize": True, "database": None}, "dev": {}}
for _name, _options in PROFILES.items():
    settings.register_profile(_name, deadline=None, print_blob=True, **_options)

_selected = os.environ.get("HYPOTHESIS_PROFILE") or "dev"
if _selected not in PROFILES:
    raise pytest.UsageError(f"HYPOTHESIS_PROFILE={_selected!r}: choose one of {', '.join(PROFILES)}")
settings.load_profile(_selected)
