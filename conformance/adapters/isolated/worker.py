"""The worker process of an isolated adapter: it loads the adapter itself, then serves one
call at a time over the pipes of ``conformance.adapters.isolated.wire`` (started by
``conformance.adapters.isolated.worker_process`` and driven by
``conformance.adapters.isolated.parent``, whose docstring says what a broken adapter costs).

It runs in a scratch directory (a relative ``path/file.py`` spec is resolved against the
user's directory, which is searched last for modules), with no core files and the file-size
limit of ``conformance.adapters.isolated.limits``; its stdout and stderr are drained into
the worker log by the parent (``conformance.adapters.isolated.worker_log``), so they are
only flushed here, never truncated.
"""

from __future__ import annotations

import faulthandler
import json
import os
import resource
import signal
import sys
import traceback
from typing import Any

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
from conformance.errors import Unsupported


def _limit_worker(filesize: int | None) -> None:
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_FSIZE, filesize)):
        if value is not None:
            hard = resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a file too large: EFBIG, not death
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when to stop
    faulthandler.enable(sys.stderr, all_threads=True)


def _absolute_spec(spec: str, cwd: str) -> str:
    """``path/file.py:attr`` with the path made absolute against the user's directory (the
    worker runs in a scratch directory); any other spec unchanged."""
    where, sep, attr = spec.rpartition(":") if ":" in spec else (spec, "", "")
    if where.endswith(".py") and not os.path.isabs(where):
        return os.path.join(cwd, where) + sep + attr
    return spec


def _load(config: dict[str, Any]) -> dict[str, Any]:
    """Resolve the adapter as if from the user's directory (which is searched last for
    modules, as ``import_from_cwd`` does) while the worker stands in its scratch directory."""
    cwd, scratch = config["cwd"], config["scratch"]
    # the kit's own packages first: an editable install is found after every sys.path entry,
    # so a user's reference.py would otherwise shadow the kit's reference
    import reference  # noqa: F401
    if cwd not in sys.path:
        sys.path.append(cwd)
    try:
        adapter = resolve(_absolute_spec(config["spec"], cwd), framework=config["framework"])
        return {"status": "ready", "description": describe(adapter), "adapter": adapter}
    except BaseException as exc:  # an import may even sys.exit
        message = str(exc) if isinstance(exc, AdapterLoadError) else (
            f"adapter {config['spec']!r} failed to load: {describe_exception(exc)}")
        message = message.replace(_absolute_spec(config["spec"], cwd), config["spec"])
        return {"status": "load_error", "message": message.replace(scratch, cwd),
                "traceback": "".join(traceback.format_exception(exc))}


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


def _flush_output() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # a closed or replaced stream is the adapter's doing
            pass


def worker_main(argv: list[str]) -> None:
    """Entry point of a worker: ``READ_FD WRITE_FD CONFIG_JSON``."""
    read_fd, write_fd, config = int(argv[0]), int(argv[1]), json.loads(argv[2])
    for fd in (read_fd, write_fd):
        os.set_inheritable(fd, False)  # not into processes the adapter starts
    _limit_worker(config["filesize"])
    channel = Channel(read_fd, write_fd)
    reply = _load(config)
    adapter = reply.pop("adapter", None)
    _flush_output()
    channel.send(reply, [])
    if adapter is None:
        return
    while True:
        try:
            message, arrays = channel.receive()
        except EOFError:
            return
        reply, out = _serve(adapter, message, arrays)
        _flush_output()
        channel.send({**reply, "seq": message.get("seq")}, out)


__all__ = ["worker_main"]

if __name__ == "__main__":
    worker_main(sys.argv[1:])
