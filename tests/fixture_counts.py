"""Printed-value comparison for the notebook fixtures, and their counts in the summary.

``reproduce(request, notebook, printed, array, fmt)`` compares every number of the text
a notebook printed with the fixture array, formatted the way the notebook's library
printed it, and counts it. The counts appear at the end of the pytest run::

    001: 174 printed values reproduced

Enable with ``pytest_plugins = ["fixture_counts"]`` in tests/conftest.py; the tests also
register it themselves when that line is missing. Under pytest-xdist each worker sends
its counts to the controller (``workeroutput``), which adds them up and prints the total.
"""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
NOISE = re.compile(r"dtype=\w+")  # "dtype=int32" holds digits that are not values

# How each library printed a number (the notebooks' own settings).
FORMATS = {
    # np.set_printoptions(precision=4, suppress=True): 4 digits, trailing zeros trimmed
    "numpy4": lambda v: np.format_float_positional(v, precision=4, unique=True,
                                                   fractional=True, trim="."),
    "torch4": lambda v: f"{float(v):.4f}",  # torch's fixed-point mode
    "torch4e": lambda v: f"{float(v):.4e}",  # torch's scientific mode
    "torchint": lambda v: f"{float(v):.0f}.",  # torch's integer-valued floats: "1."
    "int": lambda v: str(int(v)),
    "repr": lambda v: repr(float(v)),  # Python's print of a float
}


class PrintedCounts:
    """Collects per-notebook counts and writes them in the terminal summary."""

    name = "fixture-counts"

    def __init__(self) -> None:
        self.reproduced: Counter[str] = Counter()
        self.unreproducible: Counter[str] = Counter()

    def pytest_sessionfinish(self, session) -> None:
        output = getattr(session.config, "workeroutput", None)
        if output is not None:  # an xdist worker: hand the counts to the controller
            output["printed_counts"] = [dict(self.reproduced), dict(self.unreproducible)]

    @pytest.hookimpl(optionalhook=True)  # an xdist hook: absent without pytest-xdist
    def pytest_testnodedown(self, node, error) -> None:
        reproduced, unreproducible = getattr(node, "workeroutput", {}).get(
            "printed_counts", ({}, {}))
        self.reproduced.update(reproduced)
        self.unreproducible.update(unreproducible)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        notebooks = sorted(set(self.reproduced) | set(self.unreproducible))
        if not notebooks:
            return
        terminalreporter.section("notebook fixtures: printed values")
        for nb in notebooks:
            line = f"{nb}: {self.reproduced[nb]} printed values reproduced"
            if self.unreproducible[nb]:
                line += (f"; {self.unreproducible[nb]} printed from unseeded random draws, "
                         f"checked for plausibility only")
            terminalreporter.write_line(line)


def counts(config: pytest.Config) -> PrintedCounts:
    plugin = config.pluginmanager.get_plugin(PrintedCounts.name)
    if plugin is None:
        plugin = PrintedCounts()
        config.pluginmanager.register(plugin, PrintedCounts.name)
    return plugin


def pytest_configure(config: pytest.Config) -> None:
    counts(config)


def assert_typed_verbatim(path, printed_rows) -> None:
    """Every typed block ``(cell, name, fmt, printed)`` appears verbatim in the notebook."""
    __tracebackhide__ = True
    if not path.is_file():
        pytest.skip(f"seed notebook not available at {path} (set ATTNCONF_SEEDS)")
    text = path.read_text(encoding="utf-8")
    missing = [(c, n) for c, n, _, p in printed_rows if p not in text]
    assert not missing, f"typed blocks not found verbatim in {path}: {missing}"


def tokens(printed: str) -> list[str]:
    """The numbers of a printed text, in reading order (labels carry no digits)."""
    return NUMBER.findall(NOISE.sub(" ", printed))


def reproduce(request: pytest.FixtureRequest, notebook: str, printed: str, array,
              fmt: str) -> int:
    """Assert that ``array`` prints as ``printed`` did, number by number; count them."""
    __tracebackhide__ = True
    expected = tokens(printed)
    values = np.asarray(array).ravel()
    assert len(values) == len(expected), (
        f"{notebook}: the notebook printed {len(expected)} numbers, the fixture holds "
        f"{values.size} (shape {np.shape(array)}): {printed!r}")
    wrong = [(i, tok, FORMATS[fmt](v)) for i, (tok, v) in enumerate(zip(expected, values,
                                                                      strict=True))
             if FORMATS[fmt](v) != tok.lstrip("+")]
    assert not wrong, (
        f"{notebook}: {len(wrong)} of {len(expected)} printed numbers differ at the printed "
        f"precision ({fmt}); first (index, printed, fixture formatted): {wrong[:5]}")
    counts(request.config).reproduced[notebook] += len(expected)
    return len(expected)


def unreproducible(request: pytest.FixtureRequest, notebook: str, n: int) -> None:
    counts(request.config).unreproducible[notebook] += n
