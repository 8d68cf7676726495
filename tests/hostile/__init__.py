"""The hostile zoo: adapters that each misbehave in one way, and what a run must make of them.

Each entry is a module here exposing ``sdpa``; most are honest
(``_honest.py``) except on the three *trigger* cases of the quick profile's
numeric matrix (Lq = 7, Lk = 5, float64). ``tests/test_hostile.py`` runs
every entry through ``attnconf run`` and requires exit status 1 and a run that
differs from the honest adapter's run in exactly the ``affected`` results,
each with ``status`` and a message matching ``cause``:

* ``trigger``: the trigger cases of the numeric check;
* ``every``: every result the honest run passed;
* ``repeats``: numeric cases whose shapes and dtype already occurred earlier in the run;
* ``check:NAME``: the result of check NAME (one hypothesis-driven property).

``LOAD_ERRORS`` are specs that must be refused with exit status 2 and one line.
Modules not in either table (``hangs_on_odd_keys``, ``segfaults_once``) have
tests of their own in ``tests/test_hostile.py``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Hostile:
    behaviour: str
    cause: str  # regular expression every affected result's message matches
    # trigger | every | offset (every case whose bound can see the entry's 0.5 offset) |
    # repeats | check:NAME
    affected: str = "trigger"
    status: str = "failed"
    checks: tuple[str, ...] = ("numeric",)
    options: tuple[str, ...] = ()  # further `attnconf run` arguments
    inprocess: bool = False  # harmless enough to run in the test process as well

    def spec(self, name: str) -> str:
        return f"hostile.{name}:sdpa"


NOT_AN_ARRAY = r"expected a numpy\.ndarray, got "
MISMATCH = r"Mismatched elements: \d+ / \d+"

ZOO: dict[str, Hostile] = {
    "raises_runtime_error": Hostile(
        "raises RuntimeError", r"adapter raised RuntimeError: kernel exploded", inprocess=True),
    "raises_not_implemented": Hostile(
        "raises NotImplementedError on every call: skipped, and a run where nothing passed "
        "is not a pass", r"^unsupported: adapter raised NotImplementedError: this build",
        affected="every", status="skipped", inprocess=True),
    "sleeps_forever": Hostile(
        "hangs (ignoring SIGTERM)", r"adapter timed out after 2 s: its worker was killed",
        options=("--timeout", "2")),
    "hangs_every_call": Hostile(
        "hangs on every call, here under two hypothesis-driven properties",
        r"adapter timed out after 1 s(.|\n)*hypothesis stopped at that example",
        affected="every", checks=("causality", "determinism"), options=("--timeout", "1")),
    "aborts": Hostile(
        "calls os.abort()",
        r"crashed its worker process during the call: killed by signal 6 \(SIGABRT\)"
        r"(.|\n)*Fatal Python error: Aborted(.|\n)*aborts\.py"),
    "exits_zero": Hostile(
        "calls sys.exit(0) mid-case", r"adapter raised SystemExit: 0", inprocess=True),
    "segfaults": Hostile(
        "dies of SIGSEGV, as a kernel reading out of bounds does",
        r"crashed its worker process during the call: killed by signal 11 \(SIGSEGV\)"
        r"(.|\n)*Fatal Python error: Segmentation fault(.|\n)*segfaults\.py"),
    "hard_exits": Hostile(
        "calls os._exit(0) mid-case",
        r"crashed its worker process during the call: exited with status 0"),
    "forges_replies": Hostile(
        "writes forged bytes into the harness's reply pipe",
        r"adapter corrupted its worker's replies during the call \(message header of "),
    "exhausts_memory": Hostile(
        "allocates until memory runs out (worker memory limit of 1 GiB, resident)",
        r"the worker reached its memory limit of 1 GiB on sdpa\(float64\(1, 2, 7, 16\)"
        r".*set ATTNCONF_WORKER_MEMORY"),
    "prints_megabytes": Hostile(
        "prints megabytes to stdout/stderr (some dressed as harness output), returns zeros on "
        "the trigger cases", MISMATCH),
    "returns_none": Hostile("returns None", NOT_AN_ARRAY + "NoneType", inprocess=True),
    "returns_list": Hostile("returns a list", NOT_AN_ARRAY + "list", inprocess=True),
    "returns_scalar": Hostile("returns a Python float", NOT_AN_ARRAY + "float",
                              inprocess=True),
    "wrong_shape": Hostile("returns the wrong shape",
                           r"shape mismatch: got \(1, 2, 6, 16\), expected \(1, 2, 7, 16\)",
                           inprocess=True),
    "wrong_dtype": Hostile("returns float32 for float64",
                           r"dtype mismatch: got float32, expected float64", inprocess=True),
    "readonly_input_view": Hostile("returns a read-only view of its query", MISMATCH,
                                   inprocess=True),
    "wrong_device": Hostile("returns a torch tensor on the meta device",
                            r"output tensor is on device meta, inputs were on cpu",
                            inprocess=True),
    "nan_inf": Hostile("puts NaN and inf into its output",
                       r"actual NaN at \[\(0, 0, 0, 0\)(.|\n)*actual inf at", inprocess=True),
    "mutates_inputs": Hostile(
        "writes zeros over its query", r"modified its input\(s\) in place: query",
        affected="check:no_mutation", checks=("numeric", "no_mutation"), inprocess=True),
    "nondeterministic": Hostile(
        "answers a repeated call differently",
        r"two identical calls differ \(max abs 0\.001\)", affected="check:determinism",
        checks=("numeric", "determinism"), inprocess=True),
    "order_dependent": Hostile(
        "memoizes on shapes: results depend on the order of cases", MISMATCH,
        affected="repeats", inprocess=True),
    "patches_numpy": Hostile(
        "makes NumPy's comparisons always agree at import, returns zeros", MISMATCH),
    "patches_reference": Hostile(
        "rewires reference.sdpa (and the harness's compare) to its own wrong output at import",
        MISMATCH, affected="offset"),
}


@dataclass(frozen=True)
class LoadError:
    spec: str
    cause: str  # regular expression the one-line error matches
    inprocess: bool = True


LOAD_ERRORS: dict[str, LoadError] = {
    "import_error": LoadError(
        "hostile.load_import_error:sdpa",
        r"failed to import: ModuleNotFoundError: No module named "
        r"'attnconf_hostile_missing_kernels'"),
    "exits_on_import": LoadError("hostile.load_exits:sdpa", r"failed to import: SystemExit: 0"),
    "aborts_on_import": LoadError(
        "hostile.load_aborts:sdpa",
        r"worker process died while loading it, killed by signal 6 \(SIGABRT\)",
        inprocess=False),
    "features_contradict_signature": LoadError(
        "hostile.load_bad_features:sdpa",
        r"declares features \['softcap', 'window'\] but its sdpa does not accept"),
    "conventions_contradict_signature": LoadError(
        "hostile.load_bad_conventions:sdpa",
        r"declares causal_alignment but its sdpa has no is_causal parameter"),
    "missing_attribute": LoadError(
        "hostile.raises_runtime_error:nope", r"raises_runtime_error has no attribute 'nope'"),
    "not_an_adapter": LoadError(
        "hostile._honest:TRIGGER_ID", r"is neither a callable nor an object exposing any of"),
}
