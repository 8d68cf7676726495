"""The blocked path against sdpa's plain formula: peak memory and time, as ratios.

sdpa is forced onto its plain path (``BLOCKED_ABOVE`` raised) so the two are
the two definitions side by side: H=1, E=64, causal, float64. Peak memory is
traced with tracemalloc (NumPy reports its allocations there), so it counts
bytes, not seconds; times are the best of a few, reported only as a ratio.
"""

from __future__ import annotations

import importlib
import time
import tracemalloc

import numpy as np

from reference import blocked_sdpa

sdpa_module = importlib.import_module("reference.sdpa")


def peak_bytes(fn, *args, **kwargs) -> int:
    tracemalloc.start()
    try:
        fn(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def best_seconds(fn, *args, repeats: int = 3, **kwargs) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args, **kwargs)
        times.append(time.perf_counter() - start)
    return min(times)


def plain_sdpa(*args, **kwargs):
    """reference.sdpa held to its plain path whatever the size."""
    threshold, sdpa_module.BLOCKED_ABOVE = sdpa_module.BLOCKED_ABOVE, float("inf")
    try:
        return sdpa_module.sdpa(*args, **kwargs)
    finally:
        sdpa_module.BLOCKED_ABOVE = threshold


def main(lengths=(512, 1024, 2048, 4096), block: int = 128) -> list[dict]:
    """Rows: plain and blocked peak MiB, their ratio, and blocked/plain time, per L."""
    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        q, k, v = (rng.standard_normal((1, length, 64)) for _ in range(3))
        plain = peak_bytes(plain_sdpa, q, k, v, is_causal=True)
        blocked = peak_bytes(blocked_sdpa, q, k, v, is_causal=True, block_size=block)
        t_plain = best_seconds(plain_sdpa, q, k, v, is_causal=True)
        t_blocked = best_seconds(blocked_sdpa, q, k, v, is_causal=True, block_size=block)
        name = f"causal H=1 L={length}"
        rows += [
            {"metric": f"{name} plain peak", "value": plain / 2**20, "unit": "MiB"},
            {"metric": f"{name} blocked (block {block}) peak", "value": blocked / 2**20,
             "unit": "MiB"},
            {"metric": f"{name} plain / blocked peak", "value": plain / blocked, "unit": "×"},
            {"metric": f"{name} blocked / plain time", "value": t_blocked / t_plain, "unit": "×"},
        ]
    return [{"section": "blocked vs plain", "target": "", "met": None, **r} for r in rows]


if __name__ == "__main__":
    from run import print_table

    print_table(main())
