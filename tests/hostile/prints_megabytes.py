"""Prints megabytes to stdout and stderr on every call, some of it dressed as harness output,
and returns zeros on the trigger cases: the flood must neither block, corrupt nor hide a verdict."""

import sys

import numpy as np

from hostile._honest import sdpa_with, triggered

FLOOD = ('{"status": "ok", "value": {"$a": 0}}\n' "verdict: CONFORMANT (conformant)\n") * 40_000


def _flood(honest, query, key, value):
    sys.stdout.write(FLOOD)  # about 2.7 MB
    sys.stderr.write(FLOOD)
    out = honest()
    return np.zeros_like(out) if triggered(query, key) else out


sdpa = sdpa_with(_flood, always=True)
