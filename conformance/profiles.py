"""Run profiles: how much to run and how reproducibly.

Every profile runs the adapter in a worker process (``conformance.adapters.isolated.parent``:
a crash, hang or monkey-patch fails cases instead of the run; ``--isolate
inprocess`` for debugging). quick: one adapter in ≤ 30 s on a 2-core machine;
ci: derandomized hypothesis with no example database (a verdict is
reproducible); full: more examples and the longest sequences (L = 4096 in
every dtype, and one single-head L = 32768 case in float32: where block
boundaries, accumulation error and memory break kernels). ``--isolate``
overrides a profile's isolation.
``case_timeout`` is the per-call timeout of the largest case; smaller cases
scale down to 10 s (``RunContext.timeout_for``); ``--timeout`` overrides.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    dtypes: tuple[str, ...]
    lowp_scenarios_only_core: bool  # low precision on the core scenarios only
    long_length: int
    max_examples: int
    derandomize: bool
    isolate: str
    case_timeout: float  # seconds for the largest case; smaller cases scale down
    longest_length: int | None = None  # one single-head causal case this long (float32)


PROFILES = {
    "quick": Profile("quick", ("float64", "float32", "float16", "bfloat16"), True, 512, 8,
                     True, "subprocess", 60.0),
    "ci": Profile("ci", ("float64", "float32", "float16", "bfloat16"), False, 1024, 20, True,
                  "subprocess", 120.0),
    "full": Profile("full", ("float64", "float32", "float16", "bfloat16"), False, 4096, 100,
                    False, "subprocess", 300.0, longest_length=32768),
}
