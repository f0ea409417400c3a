"""Hypothesis profiles: random exploration on developer machines, a fixed search in CI.

A property test that finds a new counter-example should fail on the machine of whoever is changing
the code, not turn an unrelated CI run red; CI (``.ci/run``) selects the ``ci`` profile.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.register_profile("dev", print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
