"""Fails to import: it needs a kernel library that is not installed."""

import attnconf_hostile_missing_kernels  # noqa: F401

from hostile._honest import honest_sdpa as sdpa  # noqa: F401
