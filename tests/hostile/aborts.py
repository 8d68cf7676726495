"""Calls os.abort() on the trigger cases: the process dies by SIGABRT, no exception to catch."""

import os

from hostile._honest import sdpa_with


def _abort(honest, query, key, value):
    os.abort()


sdpa = sdpa_with(_abort)
