"""The harness's speed shortcuts change nothing a check sees: OpenMP threads wait passively
unless the user says otherwise, the mutation check compares values (lazily, bit-identical
arrays fast), and the once-computed derandomize seed draws hypothesis's own examples."""

from __future__ import annotations

import dataclasses
import importlib
import os

import numpy as np
import pytest

from conformance.adapters.invoke import InProcessInvoker
from conformance.adapters.load import load_object, resolve
from conformance.checks import RunContext
from conformance.checks.property_bodies import PROPERTIES
from conformance.profiles import PROFILES

properties = importlib.import_module("conformance.checks.properties")


@pytest.mark.parametrize("preset, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_loading_an_adapter_defaults_openmp_to_passive_waits(monkeypatch, preset, expected):
    if preset is None:
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    else:
        monkeypatch.setenv("OMP_WAIT_POLICY", preset)
    load_object("numpy")
    assert os.environ["OMP_WAIT_POLICY"] == expected


def _in_place(write):
    def sdpa(query, key, value, attn_mask=None, is_causal=False, scale=None):
        write(query)
        return np.zeros((*query.shape[:-1], value.shape[-1]), query.dtype)
    return sdpa


@pytest.mark.parametrize("write, mutated", [
    (lambda q: None, ()),
    (lambda q: q.__setitem__((0, 1), -q[0, 1]), ("query",)),
    (lambda q: q.__setitem__((0, 0), np.nan), ("query",)),
    (lambda q: np.copyto(q, -0.0, where=q == 0), ()),  # other bits, equal values
    (lambda q: np.copyto(q, np.float64(np.nan), where=np.isnan(q)), ()),  # NaN stays NaN
])
def test_mutation_means_changed_values(write, mutated):
    query = np.array([[0.0, 1.0], [np.nan, 2.0]])
    adapter = resolve("test:in_place", obj=_in_place(write))
    outcome = InProcessInvoker(adapter).call("sdpa", [query, query.copy(), query.copy()], {})
    assert outcome.mutated == mutated


def _examples(monkeypatch, uncached: bool) -> list[str]:
    """Problems one property check drew under the ci profile (derandomized)."""
    if uncached:  # hypothesis's own derandomize computes the seed
        monkeypatch.setattr(properties, "derandomized_seed", lambda inner: None)
    drawn: list[str] = []
    prop = next(p for p in PROPERTIES if p.name == "permutation")
    prop = dataclasses.replace(prop, body=lambda ctx, p: drawn.append(p.describe()))
    adapter = resolve("numpy")
    ctx = RunContext(adapter, InProcessInvoker(adapter), PROFILES["ci"], 1)
    # the body never calls the adapter: a run of examples that exercised nothing is skipped
    assert [r.status for r in properties.check_property(prop)(ctx, "sdpa")] == ["skipped"]
    monkeypatch.undo()
    return drawn


def test_the_cached_seed_draws_the_examples_derandomize_draws(monkeypatch):
    cached = _examples(monkeypatch, uncached=False)
    assert len(cached) == PROFILES["ci"].max_examples
    assert cached == _examples(monkeypatch, uncached=True)
