"""Raises on the trigger cases with a message holding a lone surrogate (a non-UTF-8 file
name decoded with ``os.fsdecode``, an everyday thing) and control characters: every report
must still be written, and the verdict printed on any terminal."""

import os

from hostile._honest import sdpa_with

PATH = os.fsdecode(b"/data/kernels/caf\xe9.bin")  # '\udce9' where the byte was


def _raise(honest, query, key, value):
    raise RuntimeError(f"cannot open {PATH}\x1b[2J\x00 (escape and NUL from a C library)")


sdpa = sdpa_with(_raise)
