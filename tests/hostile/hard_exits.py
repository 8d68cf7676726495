"""Calls os._exit(0) mid-case: the process is gone at once, exit status 0, nothing to catch."""

import os

from hostile._honest import sdpa_with


def _vanish(honest, query, key, value):
    os._exit(0)


sdpa = sdpa_with(_vanish)
