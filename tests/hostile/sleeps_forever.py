"""Hangs on the trigger cases, ignoring SIGTERM and SIGINT (only SIGKILL stops it)."""

import signal
import threading

from hostile._honest import sdpa_with


def _hang(honest, query, key, value):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Event().wait()


sdpa = sdpa_with(_hang)
