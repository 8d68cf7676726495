"""Dies of SIGSEGV on one case of the quick profile only (Lq = 203 in float32, a length no
property draws); honest everywhere else."""

import os
import signal

import numpy as np

from hostile._honest import sdpa_with

LENGTH, DTYPE = 203, np.float32
CASE = "sdpa-plain[b0-h1-q203-k203-e64-float32]"  # the one quick case with that query


def _segfault_on_one_case(honest, query, key, value):
    if query.shape[-2] == LENGTH and query.dtype == DTYPE:
        os.kill(os.getpid(), signal.SIGSEGV)
    return honest()


sdpa = sdpa_with(_segfault_on_one_case, always=True)
