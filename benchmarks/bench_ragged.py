"""The torch adapter's ragged ops on the kit's two long cases: peak memory and time, as ratios.

The cases are the ci profile's ``sdpa_varlen`` pack of 64 sequences (16k tokens)
and its ``paged_attention`` decode of 256 sequences, float32. Each run is a fresh
process: the resident-set high-water mark (``VmHWM``, reset through
``/proc/self/clear_refs``) above the inputs counts what the call holds. Compared
with the dense matrix a kernel without sequence structure would build (Hq ·
total_q · total_k float32 scores for the pack, Hq · B · pool slots for the
decode) and with the per-sequence SDPA form of the correct zoo
(tests/correct/torch_ragged_sdpa.py). Absolute times depend on the machine; the
ratios are measured side by side.

    python benchmarks/bench_ragged.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import json, sys, time
sys.path.insert(0, {tests!r})
import numpy as np
import torch
from conformance.ops import paged, varlen
from conformance.profiles import PROFILES

def status_kib(field):
    for line in open("/proc/self/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])

op = {op!r}
module = varlen if op == "sdpa_varlen" else paged
case = next(c for c in module.build(PROFILES["ci"], 0) if {scenario!r} in c.id)
inputs = module.make_inputs(case)
options = {{k: v for k, v in case.options if k != "recipe"}}
args = [torch.from_numpy(np.ascontiguousarray(inputs[n])) for n in module.POSITIONAL]
if {impl!r} == "flex":
    from conformance.adapters import torch_ragged as impl
else:
    from correct import torch_ragged_sdpa as impl
fn = getattr(impl, op)
if op == "paged_attention":  # warm up (imports, first-call set-up) on one sequence
    fn(args[0][:1], args[1], args[2], args[3][:1], args[4][:1], **options)
else:
    fn(args[0][:1], args[1][:1], args[2][:1], torch.tensor([0, 1]), torch.tensor([0, 1]),
       **options)
base = status_kib("VmRSS")
with open("/proc/self/clear_refs", "w") as f:  # "5" resets the high-water mark to now
    f.write("5")
start = time.perf_counter()
out = fn(*args, **options)
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "extra_kib": status_kib("VmHWM") - base,
                  "dense_bytes": {dense}}}))
"""

CASES = {
    "sdpa_varlen": ("long-64-sequences", "4 * case.shapes.heads_q * len(args[0]) * len(args[1])"),
    "paged_attention": ("decode-256-sequences",
                        "4 * case.shapes.heads_q * len(args[0]) * args[1].shape[0] * "
                        "args[1].shape[1]"),
}


def measure(op: str, impl: str) -> dict:
    """One fresh process: seconds and MiB above the inputs for ``impl`` (flex or sdpa)."""
    scenario, dense = CASES[op]
    code = CHILD.format(tests=str(ROOT / "tests"), op=op, scenario=scenario, impl=impl,
                        dense=dense)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=ROOT)
    return json.loads(done.stdout.strip().splitlines()[-1])


def row(metric: str, value: float, unit: str, target: str = "", met: bool | None = None
        ) -> dict:
    return {"section": "ragged ops (torch)", "metric": metric, "value": value, "unit": unit,
            "target": target, "met": met}


def main() -> list[dict]:
    """Per long case: flex peak and time, dense matrix / flex peak, flex / per-sequence SDPA."""
    rows = []
    for op, (scenario, _) in CASES.items():
        flex, sdpa = measure(op, "flex"), measure(op, "sdpa")
        flex_mib, sdpa_mib = flex["extra_kib"] / 1024, sdpa["extra_kib"] / 1024
        dense_mib = flex["dense_bytes"] / 2**20
        name = f"{op} {scenario}"
        rows += [
            row(f"{name} flex time", flex["seconds"], "s"),
            row(f"{name} flex peak RSS above inputs", flex_mib, "MiB"),
            row(f"{name} dense scores / flex peak", dense_mib / max(flex_mib, 1), "×",
                ">= 4 (no dense matrix)", dense_mib / max(flex_mib, 1) >= 4),
            row(f"{name} flex / per-sequence SDPA peak", flex_mib / max(sdpa_mib, 1), "×"),
            row(f"{name} flex / per-sequence SDPA time", flex["seconds"] / sdpa["seconds"],
                "×"),
        ]
    return rows


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from run import print_table

    print_table(main())
