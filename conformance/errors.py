"""Every exception the kit raises or classifies, in one place.

Which one a failure is decides its verdict: ``Unsupported`` (a case the adapter does not
accept) is a skip; ``AdapterError`` and its kinds (the adapter raised, hung, or its worker
died, or a call not made once its op used up the hang budget) are the adapter's failure,
naming the exception type; ``AdapterLoadError`` and
``UsageError`` are exit 2 (one line for the user); ``FixtureError`` refuses a verdict on
fixtures that fail verification; anything else escaping the kit is its own internal
error (exit 3), never counted against the adapter. The modules that raise these import
them from here (and re-export them where they were defined before, for callers).
"""

from __future__ import annotations

from typing import Any

MESSAGE_LIMIT = 2000  # characters of an adapter's exception text kept in a result


def describe_exception(exc: BaseException) -> str:
    """``TypeName: text``, never raising (a hostile ``__str__``) and never huge."""
    try:
        text = str(exc)
    except BaseException:  # the adapter's exception may be broken on purpose
        text = "<unprintable>"
    if len(text) > MESSAGE_LIMIT:
        text = text[:MESSAGE_LIMIT] + f"… ({len(text) - MESSAGE_LIMIT} more characters)"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# -- loading and calling an adapter ---------------------------------------------------


class AdapterLoadError(Exception):
    """The spec cannot give an adapter; the message is one line for the user."""


class AdapterError(Exception):
    """The adapter raised; ``str()`` names the exception type and its text."""


class WorkerLost(AdapterError):
    """The call did not come back: it timed out, or its worker process died."""


class NotRun(AdapterError):
    """A call the kit did not make: its op had used up its hang budget."""


class WorkerTimeout(WorkerLost):
    """The call did not finish in time; the worker was killed."""


class WorkerCrashed(WorkerLost):
    """The worker process died during the call, or broke the protocol."""


class WorkerOutOfMemory(WorkerLost):
    """The worker reached its memory limit during the call; it was ended."""


class RunOutOfTime(NotRun):
    """The run's time budget (--max-time) ran out: the call was not made, or was cut short."""


class StopExamples(BaseException):
    """An isolating invoker's failure (a timeout, a dead worker) while it is told that a
    hypothesis-driven check is calling: a BaseException, so hypothesis stops at once rather
    than shrink, which would cost a timeout or a worker restart per example. ``error`` is
    the AdapterError it stands for; the runner turns it into that check's failed result."""

    def __init__(self, error: AdapterError) -> None:
        super().__init__(str(error))
        self.error = error


class Unsupported(Exception):
    """The case needs something the adapter does not accept or declare: skipped, with why."""


class OutputTypeError(TypeError):
    """The adapter returned something that is not an array of its framework."""


class MemoryLimitReached(Exception):
    """The worker's resident memory reached its limit; ``str()`` says how much."""


class WorkerExited(Exception):
    """The worker exited (or was killed) while a reply was awaited."""


class RemoteTraceback(Exception):
    """The worker's traceback of a load error (shown by ``attnconf --traceback``)."""


class ProtocolError(Exception):
    """The other side sent something that is not a well-formed message."""


# -- judging and fixtures ---------------------------------------------------------------


class PropertyFailure(AssertionError):
    """The adapter broke the property; the message says how."""


class DropoutFailure(Exception):
    """The adapter's dropout broke one of the laws; the message says which, and where."""


class FixtureError(Exception):
    """A fixture file or manifest is missing, corrupted, or not what its manifest says."""


# -- front ends -------------------------------------------------------------------------


class UsageError(Exception):
    """A mistake in the command line or the environment: exit 2, one line."""


class MergeError(Exception):
    """The reports are not the shards of one run: exit 2, one line."""


class ConformanceFailure(Exception):
    """The pytest plugin's failed item: carries the failed results it reports."""

    def __init__(self, results: Any) -> None:
        super().__init__(f"{len(results)} failed")
        self.results = results


class KitInternalError(Exception):
    """The check stopped on an exception of the kit itself: the pytest item errors, and
    the adapter is not blamed."""

    def __init__(self, results: Any) -> None:
        super().__init__(f"{len(results)} internal error(s) of the kit")
        self.results = results
