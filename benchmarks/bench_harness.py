"""Harness cost: a quick-profile run of the torch adapter, in-process vs in a worker.

Prints both wall times and their ratio (the isolation overhead), measured in
this run. The reference expectations are cached per process, so the cache is
cleared before every run and each mode runs twice, alternating; the best of
each counts (the first run also pays torch's import and warm-up).
"""

from __future__ import annotations

import importlib
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
    # the module, not the check function of the same name that conformance.checks exports
    importlib.import_module("conformance.checks.numeric")._EXPECTED_CACHE.clear()
    start = time.perf_counter()
    results, _ = run(adapter, config)
    return time.perf_counter() - start, len(results)


def main(spec: str = "torch", rounds: int = 2) -> dict:
    best = {"inprocess": float("inf"), "subprocess": float("inf")}
    for _ in range(rounds):
        for mode in best:
            seconds, n = timed_run(spec, mode)
            best[mode] = min(best[mode], seconds)
    inproc, isolated = best["inprocess"], best["subprocess"]
    print(f"quick profile, adapter {spec}: {n} results, best of {rounds} per mode")
    print(f"  in-process   {inproc:7.2f} s")
    print(f"  subprocess   {isolated:7.2f} s   ratio {isolated / inproc:.2f}×")
    return {"inprocess_s": inproc, "subprocess_s": isolated, "ratio": isolated / inproc}


if __name__ == "__main__":
    main()
