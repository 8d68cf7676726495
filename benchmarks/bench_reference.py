"""reference.sdpa at long sequences: speed against this machine's GEMM and torch, and memory.

Every number is measured in this one run and the targets are ratios, so the
table means the same on a fast or a slow machine:

* sdpa, B=1, H=8, D=64, L ∈ {512, 2048, 4096}, float64 and float32 (the
  float32 rows pass ``compute_dtype=float32``: the reference computes in
  float64 unless told otherwise, DESIGN.md): time, GFLOP/s counting
  4·B·H·L²·D flops, the share of the numpy GEMM rate measured just before
  (a square matmul of the same dtype), the ratio to torch's math backend and
  to torch's default backend on the same inputs (reference, math and default
  are timed in turns, best of a few), and the peak memory the call allocates
  (tracemalloc, which sees NumPy's allocations);
* one head, D=64, L=32768, float64, in a fresh process: time and the RSS
  high-water mark (VmHWM, reset just before the call) above the RSS the
  process held once its inputs were made (Linux: /proc/self);
* a per-part breakdown of one 256 × 1024 tile per dtype (ns per score), which
  says what bounds the blocked path when a time target is missed.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
import tracemalloc

import numpy as np
from threadpoolctl import threadpool_limits

from reference import sdpa

SHAPE = dict(batch=1, heads=8, head_dim=64)
LENGTHS = (512, 2048, 4096)
TARGET_LENGTH = 4096
LONG_LENGTH = 32768


def best_seconds(fn, repeats: int) -> float:
    """Best wall time of ``repeats`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def gemm_gflops(dtype: np.dtype, n: int = 2048, repeats: int = 3) -> float:
    """This machine's numpy matmul rate for an n × n × n product, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(dtype) for _ in range(2))
    return 2 * n**3 / best_seconds(lambda: a @ b, repeats) / 1e9


def traced_peak_mib(fn) -> float:
    """Peak bytes allocated (as tracemalloc sees them) while ``fn`` runs, in MiB."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def torch_runners(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> dict:
    """torch's math backend and its default backend on the same inputs (None without torch)."""
    try:
        import torch
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:
        return {}
    tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
    attend = torch.nn.functional.scaled_dot_product_attention

    def math_backend():
        with sdpa_kernel(SDPBackend.MATH):
            attend(tq, tk, tv)

    return {"torch math": math_backend, "torch default": lambda: attend(tq, tk, tv)}


def row(metric: str, value: float, unit: str, target: str = "", met: bool | None = None) -> dict:
    return {"section": "reference", "metric": metric, "value": value, "unit": unit,
            "target": target, "met": met}


def sdpa_rows(dtype: np.dtype, length: int, gemm: float) -> list[dict]:
    """Time, GFLOP/s, GEMM share, torch ratios and peak memory of one shape."""
    rng = np.random.default_rng(length)
    shape = (SHAPE["batch"], SHAPE["heads"], length, SHAPE["head_dim"])
    q, k, v = (rng.standard_normal(shape).astype(dtype) for _ in range(3))
    compute = None if dtype == np.float64 else dtype
    runners = {"reference": lambda: sdpa(q, k, v, compute_dtype=compute), **torch_runners(q, k, v)}
    repeats = 2 if length >= TARGET_LENGTH else 3
    best = dict.fromkeys(runners, math.inf)
    for _ in range(repeats):  # in turns, so a burst of other load hits all of them alike
        for name, fn in runners.items():
            best[name] = min(best[name], best_seconds(fn, 1))
    flops = 4 * SHAPE["batch"] * SHAPE["heads"] * length**2 * SHAPE["head_dim"]
    name = f"sdpa {np.dtype(dtype).name} L={length}"
    at_target = length == TARGET_LENGTH
    rate = flops / best["reference"] / 1e9
    rows = [row(f"{name} time", best["reference"], "s"),
            row(f"{name} GFLOP/s", rate, "GFLOP/s"),
            row(f"{name} share of GEMM ({gemm:.1f} GFLOP/s)", rate / gemm, "×",
                *((">= 0.33", rate / gemm >= 0.33) if at_target and dtype == np.float64
                  else ("", None)))]
    limits = {"torch math": 0.6, "torch default": 2.0 if dtype == np.float64 else None}
    for other, limit in limits.items():
        if other in best:
            ratio = best["reference"] / best[other]
            target = (f"<= {limit}", ratio <= limit) if at_target and limit else ("", None)
            rows.append(row(f"{name} / {other} time", ratio, "×", *target))
    rows.append(row(f"{name} peak allocated", traced_peak_mib(runners["reference"]), "MiB"))
    return rows


LONG_CHILD = """
import json, resource, sys, time
import numpy as np
import threadpoolctl  # imported before the baseline: a module, not the call's memory
from reference import sdpa

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

n = {n}
rng = np.random.default_rng(0)
q, k, v = (rng.standard_normal((1, n, 64)) for _ in range(3))
base = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # "5" resets the high-water mark to now
    f.write("5")
start = time.perf_counter()
out = sdpa(q, k, v)
seconds = time.perf_counter() - start
peak = status_kib("VmHWM")
print(json.dumps({{"seconds": seconds, "extra_kib": peak - base, "out_bytes": out.nbytes}}))
"""


def long_sequence_rows(length: int = LONG_LENGTH) -> list[dict]:
    """One head, D=64, float64, in a fresh process: time and RSS high-water mark above inputs."""
    done = subprocess.run([sys.executable, "-c", LONG_CHILD.format(n=length)],
                          capture_output=True, text=True, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    extra, out_mib = result["extra_kib"] / 1024, result["out_bytes"] / 2**20
    name = f"sdpa float64 H=1 L={length}"
    return [row(f"{name} time", result["seconds"], "s"),
            row(f"{name} peak RSS above inputs", extra, "MiB",
                f"<= output {out_mib:.0f} + 64", extra <= out_mib + 64)]


def tile_breakdown_rows(dtype: np.dtype, rows: int = 256, keys: int = 1024,
                        head_dim: int = 64) -> list[dict]:
    """ns per score of each step of one tile of the blocked path, on one thread."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((n, head_dim)).astype(dtype) for n in (rows, keys, keys))
    scores = q @ k.T
    row_max = scores.max(axis=-1)
    shifted = scores - row_max[:, None]
    probs = np.exp(shifted)
    steps = {
        "q kᵀ (BLAS)": lambda: q @ k.T,
        "row max": lambda: scores.max(axis=-1),
        "subtract max": lambda: np.subtract(scores, row_max[:, None], out=shifted),
        "exp": lambda: np.exp(shifted, out=probs),
        "row sum": lambda: probs.sum(axis=-1),
        "p v (BLAS)": lambda: probs @ v,
    }
    per_score = 1e9 / (rows * keys)
    with threadpool_limits(limits=1, user_api="blas"):  # one worker's share of the machine
        return [row(f"tile {rows}×{keys} {np.dtype(dtype).name} {step}",
                    best_seconds(fn, 5) * per_score, "ns/score")
                for step, fn in steps.items()]


def main(long: bool = True) -> list[dict]:
    """All reference rows; ``long=False`` skips the L=32768 child process."""
    rows = []
    for dtype in (np.float64, np.float32):
        gemm = gemm_gflops(dtype)
        rows.append(row(f"numpy GEMM {np.dtype(dtype).name}", gemm, "GFLOP/s"))
        for length in LENGTHS:
            rows.extend(sdpa_rows(np.dtype(dtype), length, gemm))
    if long:
        rows.extend(long_sequence_rows())
    for dtype in (np.float64, np.float32):
        rows.extend(tile_breakdown_rows(np.dtype(dtype)))
    return rows


if __name__ == "__main__":
    from run import print_table

    print_table(main("--no-long" not in sys.argv))
