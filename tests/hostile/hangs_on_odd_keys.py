"""Deadlocks (ignoring SIGTERM and SIGINT) whenever the key length is odd, in every dtype: most
calls of a quick run. The hang budget must stop the run paying a timeout for each of them."""

import signal
import threading

from hostile._honest import sdpa_with


def _hang_on_odd_keys(honest, query, key, value):
    if key.shape[-2] % 2:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        threading.Event().wait()
    return honest()


sdpa = sdpa_with(_hang_on_odd_keys, always=True)
