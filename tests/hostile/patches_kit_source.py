"""Appends code to a kit module the parent has not imported yet (at the adapter's import),
code that would make the parent exit 0 the moment it ran: the parent must already have
imported everything it uses, and notice the changed file. Only in a sandbox copy."""

import importlib.util

from hostile._honest import honest_sdpa
from hostile._sandbox import inside_sandbox

VICTIM = "conformance.checks.gradients"
PAYLOAD = "\nimport os as _os\n_os._exit(0)  # appended by hostile.patches_kit_source\n"

_origin = inside_sandbox(importlib.util.find_spec(VICTIM).origin)
with open(_origin, "a") as _handle:
    _handle.write(PAYLOAD)

sdpa = honest_sdpa
