"""The blocked path against sdpa's plain formula: peak memory and time, as ratios.

``reference.sdpa`` is the plain formula at every size, so the two are the two
definitions side by side: H=1, E=64, causal, float64. Peak memory is
traced with tracemalloc (NumPy reports its allocations there), so it counts
bytes, not seconds; times are the best of a few, reported only as a ratio.
"""

from __future__ import annotations

from functools import partial

import numpy as np
from bench_reference import best_seconds, traced_peak_mib

from reference import blocked_sdpa
from reference import sdpa as plain_sdpa


def main(lengths=(512, 1024, 2048, 4096), block: int = 128) -> list[dict]:
    """Rows: plain and blocked peak MiB, their ratio, and blocked/plain time, per L."""
    rng = np.random.default_rng(0)
    rows = []
    for length in lengths:
        q, k, v = (rng.standard_normal((1, length, 64)) for _ in range(3))
        run_plain = partial(plain_sdpa, q, k, v, is_causal=True)
        run_blocked = partial(blocked_sdpa, q, k, v, is_causal=True, block_size=block)
        plain, blocked = traced_peak_mib(run_plain), traced_peak_mib(run_blocked)
        t_plain, t_blocked = best_seconds(run_plain, 3), best_seconds(run_blocked, 3)
        name = f"causal H=1 L={length}"
        rows += [
            {"metric": f"{name} plain peak", "value": plain, "unit": "MiB"},
            {"metric": f"{name} blocked (block {block}) peak", "value": blocked, "unit": "MiB"},
            {"metric": f"{name} plain / blocked peak", "value": plain / blocked, "unit": "×"},
            {"metric": f"{name} blocked / plain time", "value": t_blocked / t_plain, "unit": "×"},
        ]
    return [{"section": "blocked vs plain", "target": "", "met": None, **r} for r in rows]


if __name__ == "__main__":
    from run import print_table

    print_table(main())
