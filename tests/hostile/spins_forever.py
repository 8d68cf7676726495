"""Spins a core forever on every call, holding the GIL in pure Python and ignoring SIGTERM,
as a kernel stuck in a loop does: killing ``attnconf`` must not leave it running."""

import signal

from hostile._honest import sdpa_with

signal.signal(signal.SIGTERM, signal.SIG_IGN)


def _spin(honest, query, key, value):
    while True:
        pass


sdpa = sdpa_with(_spin, always=True)
