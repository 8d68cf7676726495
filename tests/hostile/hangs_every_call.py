"""Hangs on every call: under hypothesis-driven checks the first hang must end the check,
not set hypothesis shrinking through one timeout per example."""

import threading

from hostile._honest import sdpa_with

sdpa = sdpa_with(lambda honest, query, key, value: threading.Event().wait(), always=True)
