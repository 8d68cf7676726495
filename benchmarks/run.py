"""Run every benchmark and print one table, measured in this one run.

    python benchmarks/run.py [--no-matrix] [--no-long] [--json PATH]

A header says what the numbers were measured on (cores, BLAS and the core
type it detected, thread counts, package versions); each row is a metric,
its value and unit, and, where the issue sets one, its target and whether
this run met it. Absolute times depend on the machine: the targets are ratios
or rates measured beside each other in the same run.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

PACKAGES = ("numpy", "torch", "hypothesis", "pytest", "threadpoolctl", "attention-conformance")


def _cpu_name() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo), else what platform reports."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    return next((line.split(":", 1)[1].strip() for line in lines
                 if line.startswith("model name")), platform.processor())


def machine_header() -> list[str]:
    """Cores, BLAS, detected core type, thread counts and package versions."""
    import numpy as np
    from threadpoolctl import threadpool_info

    try:  # loaded before threadpool_info, so its thread pools are listed too
        import torch
    except ImportError:
        torch = None

    from reference.blocked import default_threads

    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    pools = [f"{p['internal_api']} {p.get('version') or ''} ({p.get('architecture') or '?'}): "
             f"{p['num_threads']} threads" for p in threadpool_info()]
    versions = []
    for name in PACKAGES:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} absent")
    torch_threads = f"torch {torch.get_num_threads()} threads" if torch else "torch absent"
    omp = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY") if k in os.environ}
    return [f"machine: {_cpu_name()}, {os.cpu_count()} cores, python {platform.python_version()}",
            f"environment at start: {omp or 'no OMP_* variable set'}",
            f"numpy BLAS: {blas.get('name')} {blas.get('version')}",
            "thread pools: " + "; ".join(pools),
            f"threads: reference.blocked_sdpa {default_threads()} workers "
            f"(ATTNCONF_THREADS={os.environ.get('ATTNCONF_THREADS', 'unset')}), {torch_threads}",
            "versions: " + ", ".join(versions)]


def _format(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    return str(value)


def print_table(rows: list[dict]) -> None:
    """One table (section, metric, value, unit, target, met), then the rows' notes."""
    cells = [[r["section"], r["metric"], _format(r["value"]), r["unit"], r.get("target") or "",
              {True: "yes", False: "NO", None: ""}[r.get("met")]] for r in rows]
    head = ["section", "metric", "value", "unit", "target", "met"]
    widths = [max(len(c[i]) for c in [head, *cells]) for i in range(len(head))]
    for line in [head, ["-" * w for w in widths], *cells]:
        print("  ".join(c.rjust(w) if i == 2 else c.ljust(w)
                        for i, (c, w) in enumerate(zip(line, widths, strict=True))).rstrip())
    notes = [f"  {r['metric']}: {r['note']}" for r in rows if r.get("note")]
    if notes:
        print("\nnotes:", *notes, sep="\n")


def main(argv: list[str]) -> list[dict]:
    import bench_blocked
    import bench_cases
    import bench_harness
    import bench_ragged
    import bench_reference

    for line in machine_header():
        print(line)
    print(flush=True)
    rows = bench_reference.main(long="--no-long" not in argv)
    rows += bench_blocked.main()
    rows += bench_harness.main(argv)
    rows += bench_cases.main()
    rows += bench_ragged.main()
    print_table(rows)
    if "--json" in argv:
        Path(argv[argv.index("--json") + 1]).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main(sys.argv[1:])
