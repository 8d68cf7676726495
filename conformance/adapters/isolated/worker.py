"""The worker process of an isolated adapter: it loads the adapter itself, then serves one
call at a time over the pipes of ``conformance.adapters.isolated.wire`` (started and driven by
``conformance.adapters.isolated.parent``, whose docstring says what a broken adapter costs).

It runs under ``RLIMIT_AS`` (``memory_limit_from_env``: 4 GiB unless
``ATTNCONF_WORKER_MEMORY`` says otherwise), no core files, and at most ``OUTPUT_LIMIT``
bytes of output per call, which goes to a file the parent empties before every call.
"""

from __future__ import annotations

import faulthandler
import json
import os
import re
import resource
import signal
import sys
import traceback

import numpy as np

from conformance.adapters.frameworks import OutputTypeError
from conformance.adapters.invoke import (
    AdapterError,
    describe_exception,
    dispatch,
)
from conformance.adapters.isolated.wire import (
    MAX_ARRAY_BYTES,
    Channel,
    decode,
    dtype_token,
    encode,
)
from conformance.adapters.load import (
    AdapterLoadError,
    ResolvedAdapter,
    describe,
    resolve,
)
from conformance.errors import RemoteTraceback as RemoteTraceback
from conformance.errors import Unsupported
from conformance.errors import WorkerCrashed as WorkerCrashed
from conformance.errors import WorkerTimeout as WorkerTimeout

MEMORY_ENV = "ATTNCONF_WORKER_MEMORY"
DEFAULT_MEMORY = 4 << 30
OUTPUT_LIMIT = 64 << 20  # bytes a worker may write to stdout/stderr during one call


def memory_limit_from_env() -> int | None:
    """Bytes of address space for a worker, from ATTNCONF_WORKER_MEMORY (None = no limit)."""
    text = os.environ.get(MEMORY_ENV, "").strip().lower()
    if not text:
        return DEFAULT_MEMORY
    if text in ("none", "0", "unlimited"):
        return None
    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?)i?b?", text)
    if not match:
        raise ValueError(f"{MEMORY_ENV}={text!r}: expected e.g. 4G, 512M, a byte count or none")
    return int(float(match[1]) * 1024 ** " kmgt".index(match[2] or " "))


def _limit_worker(memory: int | None) -> None:
    for limit, value in ((resource.RLIMIT_AS, memory), (resource.RLIMIT_CORE, 0),
                         (resource.RLIMIT_FSIZE, OUTPUT_LIMIT)):
        if value is not None:
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # too much output: EFBIG, not death
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    faulthandler.enable(sys.stderr, all_threads=True)


def _serve(adapter: ResolvedAdapter, message: dict, arrays: list) -> tuple[dict, list]:
    """One request: the reply and its arrays. Never raises."""
    try:
        args, kwargs = decode(message["args"], arrays), decode(message["kwargs"], arrays)
        outcome = dispatch(adapter, message["op"], args, kwargs)
        out: list[np.ndarray] = []
        value = encode(outcome.value, out)
        for a in out:
            dtype_token(a.dtype)
        if sum(a.nbytes for a in out) > MAX_ARRAY_BYTES:
            raise OutputTypeError(f"outputs of {sum(a.nbytes for a in out)} bytes: too large")
        return {"status": "ok", "value": value, "mutated": list(outcome.mutated)}, out
    except Unsupported as exc:
        return {"status": "unsupported", "message": str(exc)}, []
    except AdapterError as exc:
        replace = isinstance(exc.__context__, MemoryError)
        return {"status": "adapter_error", "message": str(exc), "replace": replace}, []
    except OutputTypeError as exc:
        return {"status": "output_type", "message": str(exc)}, []
    except BaseException as exc:  # the output broke the conversion, a hostile __array__, …
        return {"status": "output_type", "message": "the adapter's output could not be used: "
                + describe_exception(exc), "replace": True}, []


def _empty_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a closed or replaced stream is the adapter's doing
            pass
    try:
        os.ftruncate(1, 0)
    except OSError:
        pass


def worker_main(argv: list[str]) -> None:
    """Entry point of a worker: ``READ_FD WRITE_FD CONFIG_JSON``."""
    read_fd, write_fd, config = int(argv[0]), int(argv[1]), json.loads(argv[2])
    for fd in (read_fd, write_fd):
        os.set_inheritable(fd, False)  # not into processes the adapter starts
    _limit_worker(config["memory"])
    channel = Channel(read_fd, write_fd)
    try:
        adapter = resolve(config["spec"], framework=config["framework"])
        reply = {"status": "ready", "description": describe(adapter)}
    except BaseException as exc:  # an import may even sys.exit
        text = str(exc) if isinstance(exc, AdapterLoadError) else (
            f"adapter {config['spec']!r} failed to load: {describe_exception(exc)}")
        reply = {"status": "load_error", "message": text,
                 "traceback": "".join(traceback.format_exception(exc))}
    _empty_output()
    channel.send(reply, [])
    if reply["status"] != "ready":
        return
    while True:
        try:
            message, arrays = channel.receive()
        except EOFError:
            return
        reply, out = _serve(adapter, message, arrays)
        _empty_output()
        channel.send({**reply, "seq": message.get("seq")}, out)


__all__ = ["DEFAULT_MEMORY", "MEMORY_ENV", "OUTPUT_LIMIT", "memory_limit_from_env", "worker_main"]

if __name__ == "__main__":
    worker_main(sys.argv[1:])
