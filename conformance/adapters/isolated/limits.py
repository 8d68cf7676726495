"""The worker's limits, each read from one environment variable (docs/isolation.md).

=========================  =======  ==============================================
variable                   default  what it bounds
=========================  =======  ==============================================
ATTNCONF_WORKER_MEMORY     4G       resident memory (RSS) of the worker process,
                                    polled while a call runs; reaching it ends the
                                    worker and fails the call naming the limit
ATTNCONF_WORKER_FILESIZE   none     size of any one file the worker writes
                                    (RLIMIT_FSIZE)
ATTNCONF_WORKER_OUTPUT     64M      bytes of the adapter's stdout/stderr kept in
                                    the worker log (the rest is counted, dropped)
ATTNCONF_WORKER_LOG        (temp)   where that log goes; default
                                    ``$TMPDIR/attnconf-worker-<pid>.log``
=========================  =======  ==============================================

Sizes are written ``4G``, ``512M``, ``64k``, a byte count, or ``none`` (no limit).
Resident memory, not address space: CUDA and TensorFlow reserve large virtual
ranges they never touch, and JIT frameworks map far more than they use (JAX on CPU:
1.5 GB of address space for 227 MB resident); an address-space cap broke them.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

MEMORY_ENV = "ATTNCONF_WORKER_MEMORY"
FILESIZE_ENV = "ATTNCONF_WORKER_FILESIZE"
OUTPUT_ENV = "ATTNCONF_WORKER_OUTPUT"
LOG_ENV = "ATTNCONF_WORKER_LOG"

DEFAULT_MEMORY = 4 << 30
DEFAULT_FILESIZE = None
DEFAULT_OUTPUT = 64 << 20

_SIZE = re.compile(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?")


def parse_size(variable: str, text: str, default: int | None) -> int | None:
    """Bytes for ``text`` (``2G``, ``512M``, ``64k``, ``1.5g``, a byte count); None for
    ``none``/``0``/``unlimited``; ``default`` when empty. ValueError naming ``variable``."""
    text = text.strip().lower()
    if not text:
        return default
    if text in ("none", "0", "unlimited"):
        return None
    match = _SIZE.fullmatch(text)
    if not match:
        raise ValueError(f"{variable}={text!r}: expected e.g. 4G, 512M, a byte count or none")
    return int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))


def _from_env(variable: str, default: int | None) -> int | None:
    return parse_size(variable, os.environ.get(variable, ""), default)


def memory_limit_from_env() -> int | None:
    """Bytes of resident memory for a worker, from ATTNCONF_WORKER_MEMORY (None = no limit)."""
    return _from_env(MEMORY_ENV, DEFAULT_MEMORY)


def filesize_limit_from_env() -> int | None:
    """Largest file a worker may write, from ATTNCONF_WORKER_FILESIZE (None = no limit)."""
    return _from_env(FILESIZE_ENV, DEFAULT_FILESIZE)


def output_limit_from_env() -> int | None:
    """Bytes of adapter output kept in the worker log, from ATTNCONF_WORKER_OUTPUT."""
    return _from_env(OUTPUT_ENV, DEFAULT_OUTPUT)


def log_path_from_env() -> Path:
    """The worker log: ATTNCONF_WORKER_LOG, else one file per attnconf process in $TMPDIR."""
    given = os.environ.get(LOG_ENV, "").strip()
    if given:
        return Path(given).expanduser().resolve()
    return Path(tempfile.gettempdir()) / f"attnconf-worker-{os.getpid()}.log"


def size_text(size: int | None) -> str:
    """``4 GiB``, ``512 MiB``, ``unlimited``."""
    if size is None:
        return "unlimited"
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if size >= 1 << shift:
            return f"{size / (1 << shift):.3g} {unit}"
    return f"{size} bytes"


def describe_limits() -> str:
    """The header's words for the worker's limits (ValueError for a malformed variable)."""
    return (f"worker memory {size_text(memory_limit_from_env())} resident, "
            f"file size {size_text(filesize_limit_from_env())}, "
            f"adapter output logged to {log_path_from_env()}")


__all__ = [
    "FILESIZE_ENV",
    "LOG_ENV",
    "MEMORY_ENV",
    "OUTPUT_ENV",
    "describe_limits",
    "filesize_limit_from_env",
    "log_path_from_env",
    "memory_limit_from_env",
    "output_limit_from_env",
    "parse_size",
    "size_text",
]
