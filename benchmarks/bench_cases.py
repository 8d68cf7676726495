"""Case counts and run times per profile, measured beside each other in one run.

    python benchmarks/bench_cases.py [--profiles quick,ci] [--adapter numpy]

Each profile runs ``attnconf run --adapter numpy --profile P`` in a subprocess with the
default isolation (a worker process) and OMP_NUM_THREADS=1; the row gives its wall time
against the issue-16 budget (quick <= 30 s, ci <= 180 s on 2 cores), the number of sdpa
cases and how many of them come from the covering array (conformance/ops/sdpa_axes.py).
The load average before and after is printed: other work on the machine slows the run.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

BUDGET_S = {"quick": 30.0, "ci": 180.0, "full": None}


def row(metric: str, value: float, unit: str, target: float | None = None,
        note: str = "") -> dict:
    """One table row (benchmarks/run.py's format); ``met`` is None where there is no target."""
    return {"section": "cases", "metric": metric, "value": value, "unit": unit,
            "target": "" if target is None else f"<= {target:g}",
            "met": None if target is None else bool(value <= target), "note": note}


def case_counts(profile: str) -> tuple[int, int]:
    """(sdpa cases, of which generated from the axes) for the profile."""
    from conformance.ops import op_specs
    from conformance.profiles import PROFILES
    from conformance.runner import DEFAULT_SEED

    cases = op_specs()["sdpa"].cases(PROFILES[profile], DEFAULT_SEED)
    return len(cases), sum(c.scenario.startswith("axes") for c in cases)


def timed_run(profile: str, adapter: str) -> tuple[float, str]:
    """Wall seconds of one ``attnconf run`` and its summary line."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "conformance", "run", "--adapter", adapter,
                           "--profile", profile], capture_output=True, text=True, env=env,
                          check=False)
    elapsed = time.perf_counter() - start
    summary = re.search(r"^\d+ passed, \d+ failed, \d+ skipped$", done.stdout, re.M)
    return elapsed, (summary.group(0) if summary else f"exit {done.returncode}")


def main(argv: list[str] | None = None) -> list[dict]:
    argv = list(argv or [])
    profiles = (argv[argv.index("--profiles") + 1].split(",") if "--profiles" in argv
                else ["quick", "ci"])
    adapter = argv[argv.index("--adapter") + 1] if "--adapter" in argv else "numpy"
    rows = []
    for profile in profiles:
        total, generated = case_counts(profile)
        load = os.getloadavg()[0]
        elapsed, summary = timed_run(profile, adapter)
        note = (f"{total} sdpa cases ({generated} from the axes); {summary}; load average "
                f"{load:.1f} before, {os.getloadavg()[0]:.1f} after, {os.cpu_count()} cores")
        rows += [row(f"sdpa cases, {profile}", total, "cases"),
                 row(f"attnconf run --adapter {adapter} --profile {profile}", elapsed, "s",
                     BUDGET_S.get(profile), note)]
    return rows


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from run import print_table

    print_table(main(sys.argv[1:]))
