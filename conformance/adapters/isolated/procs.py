"""Nothing a worker starts outlives it: its process tree, found and ended.

Every worker is started with a token in its environment (``ATTNCONF_WORKER_TOKEN``,
one per worker); whatever it forks or executes inherits that environment,
``start_new_session=True`` or not. Ending a worker ends every process that
is its descendant in the process table or carries its token (Linux ``/proc``),
so a child that left the worker's session and process group is found too.

Inside the worker (``guard_worker``, before the adapter is imported):

* ``PR_SET_PDEATHSIG``: the kernel sends the worker SIGKILL when the process
  that started it dies, by SIGTERM, SIGKILL or a crash;
* ``PR_SET_CHILD_SUBREAPER``: orphans of the adapter's processes are re-parented
  to the worker rather than to init, so they stay its descendants;
* a *sentinel*, a forked copy of the worker with nothing open, waits for the
  worker to be gone and then ends every process carrying the token: what the
  adapter started survives neither a killed worker nor a killed ``attnconf``.

Elsewhere than Linux the table is empty and only the worker's process group is
ended (what ``Worker.kill`` has always done).
"""

from __future__ import annotations

import ctypes
import os
import signal
import time
from pathlib import Path

TOKEN_ENV = "ATTNCONF_WORKER_TOKEN"
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PROC = Path("/proc")


def _prctl(option: int, value: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, value, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux
        return False


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid`` from /proc/PID/stat; None when it is gone."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and ')'
    return fields[0], int(fields[1])


def _pids() -> list[int]:
    try:
        return [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    found = _stat(pid)
    return found is not None and found[0] not in ("Z", "X")


def descendants(root: int) -> set[int]:
    """Every live descendant of ``root`` in the process table (not ``root`` itself)."""
    children: dict[int, list[int]] = {}
    for pid in _pids():
        found = _stat(pid)
        if found is not None and found[0] not in ("Z", "X"):
            children.setdefault(found[1], []).append(pid)
    seen, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in seen:
                seen.add(child)
                todo.append(child)
    return seen


def carriers(token: str) -> set[int]:
    """Live processes whose environment holds ``ATTNCONF_WORKER_TOKEN=token``."""
    needle = f"{TOKEN_ENV}={token}".encode()
    found = set()
    for pid in _pids():
        try:
            environ = (_PROC / str(pid) / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0") and alive(pid):
            found.add(pid)
    return found


def end_tree(root: int, token: str, rounds: int = 5) -> list[int]:
    """SIGKILL ``root``'s descendants and the token's carriers, ``root`` included, until none
    is left (a fork during a sweep is caught by the next); the pids that survived."""
    me = os.getpid()
    left: set[int] = set()
    for _ in range(rounds):
        left = (descendants(root) | carriers(token) | ({root} if alive(root) else set())) - {me}
        if not left:
            return []
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    return sorted(pid for pid in left if alive(pid))


def resident_bytes(pid: int) -> int | None:
    """Resident memory of ``pid`` (/proc/PID/statm), None where it cannot be read."""
    try:
        pages = int((_PROC / str(pid) / "statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def _sentinel(worker: int, token: str) -> None:
    """The forked sentinel: with nothing open, wait for the worker to be gone, end the token's
    carriers, exit. Never returns."""
    try:
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.closerange(3, 1 << 16)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while os.getppid() == worker:
            time.sleep(0.2)
        end_tree(worker, token)
    finally:
        os._exit(0)


def guard_worker(parent: int) -> None:
    """In a fresh worker, before the adapter is imported: die with ``parent``, adopt orphans,
    and leave a sentinel that ends the worker's processes once the worker is gone."""
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
    token = os.environ.get(TOKEN_ENV)
    if not token or not _prctl(_PR_SET_CHILD_SUBREAPER, 1):
        return
    worker = os.getpid()
    if os.fork() == 0:
        _sentinel(worker, token)


__all__ = ["TOKEN_ENV", "alive", "carriers", "descendants", "end_tree", "guard_worker",
           "resident_bytes"]
