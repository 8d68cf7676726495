"""Dies of SIGSEGV on the trigger cases, as a kernel reading out of bounds does: no exception to
catch, the process is gone."""

import os
import signal

from hostile._honest import sdpa_with


def _segfault(honest, query, key, value):
    os.kill(os.getpid(), signal.SIGSEGV)


sdpa = sdpa_with(_segfault)
