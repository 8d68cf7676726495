"""Blocked online-softmax sdpa vs the naive reference: peak memory and time, as ratios.

Peak memory is traced with tracemalloc (NumPy reports its allocations there),
so it counts bytes, not seconds, and does not depend on the machine. Times
are the best of a few repetitions, reported only as ratios within this run.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from reference import blocked_sdpa, sdpa


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


def main(lengths=(512, 1024, 2048, 4096), block: int = 128) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    print(f"blocked_sdpa (block {block}) vs sdpa, H=1, E=64, causal, float64")
    print(f"{'L':>6} {'naive peak MiB':>15} {'blocked peak MiB':>17} {'mem ratio':>10} "
          f"{'time ratio':>11}")
    for length in lengths:
        q, k, v = (rng.standard_normal((1, length, 64)) for _ in range(3))
        naive = peak_bytes(sdpa, q, k, v, is_causal=True)
        blocked = peak_bytes(blocked_sdpa, q, k, v, is_causal=True, block_size=block)
        t_naive = best_seconds(sdpa, q, k, v, is_causal=True)
        t_blocked = best_seconds(blocked_sdpa, q, k, v, is_causal=True, block_size=block)
        row = {"L": length, "naive_MiB": naive / 2**20, "blocked_MiB": blocked / 2**20,
               "memory_ratio": naive / blocked, "time_ratio": t_blocked / t_naive}
        rows.append(row)
        print(f"{length:6d} {row['naive_MiB']:15.1f} {row['blocked_MiB']:17.1f} "
              f"{row['memory_ratio']:10.1f} {row['time_ratio']:11.2f}")
    return rows


if __name__ == "__main__":
    main()
