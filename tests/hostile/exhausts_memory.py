"""Allocates (and touches) 64 MiB blocks until memory runs out, on the trigger cases.

Only ever run in a worker under a memory limit (the test sets ATTNCONF_WORKER_MEMORY).
"""

import numpy as np

from hostile._honest import sdpa_with


def _hoard(honest, query, key, value):
    blocks = []
    while True:
        blocks.append(np.ones(8 << 20))  # 64 MiB, every page written


sdpa = sdpa_with(_hoard)
