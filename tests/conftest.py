"""Kit-wide test configuration: one hypothesis profile per tox env, pytester available."""

import importlib.util
import os

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["pytester", "fixture_counts"]

settings.register_profile("ci", derandomize=True, database=None, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", deadline=None, database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


HAS_TORCH = importlib.util.find_spec("torch") is not None


def pytest_collection_modifyitems(config, items):
    """Tests marked ``torch`` are skipped, with the install line, where torch is missing."""
    if HAS_TORCH:
        return
    skip = pytest.mark.skip(reason="needs torch: pip install -c constraints.txt '.[torch]'")
    for item in items:
        if "torch" in item.keywords:
            item.add_marker(skip)
