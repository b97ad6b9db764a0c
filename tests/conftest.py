"""
Settings shared by every test.

Hypothesis runs without per-example deadlines (a loaded two-core CI machine
is slow, not wrong). Under ``HYPOTHESIS_PROFILE=ci`` (what ``make test``
sets) its examples are derandomized, so a CI run is repeatable; run without
it to explore new examples.

The Redis fixtures of L{tests.redisservers} (C{redis_server},
C{redis_sentinel}, C{redis_cluster} and their C{module_} variants) are
registered here, for the unit and the integration tests alike.
"""

from __future__ import annotations

import os

from hypothesis import settings

pytest_plugins = ["tests.redisservers"]

settings.register_profile("default", deadline=None)
settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))
