"""Run every benchmark; each prints ratios measured within this one run."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHMARKS = ("bench_blocked", "bench_harness")

if __name__ == "__main__":
    for name in BENCHMARKS:
        print(f"\n== {name}")
        importlib.import_module(name).main()
