"""Kit-wide test configuration: one hypothesis profile per tox env, pytester available."""

import os

from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "fixture_counts"]

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
