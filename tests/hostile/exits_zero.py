"""Calls sys.exit(0) mid-case: a SystemExit that must not end the run with status 0."""

import sys

from hostile._honest import sdpa_with


def _exit(honest, query, key, value):
    sys.exit(0)


sdpa = sdpa_with(_exit)
