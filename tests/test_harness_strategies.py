"""conformance.strategies: arguments checked eagerly, shapes within their bounds, problems
materialized deterministically from their seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import find, given, settings
from hypothesis import strategies as st

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.cases import AttentionShapes
from conformance.checks.property_bodies import PROPERTIES, PROPERTY_MAX_LEN, axis_problems
from conformance.ops.sdpa_axes import AXIS, Axis, Value
from conformance.strategies import (
    MASK_CHOICES,
    AttentionProblem,
    attention_problems,
    attention_shapes,
    axis_shapes,
    mask_shape,
    materialize,
)

FEW = settings(max_examples=40)


@pytest.mark.parametrize("kwargs, message", [
    ({"max_len": 0}, "max_len must be an int ≥ 1, got 0: max_len bounds min_len (1) from "
                     "above; raise max_len or lower min_len"),
    ({"min_len": 5, "max_len": 3}, "max_len must be an int ≥ 5, got 3: max_len bounds min_len "
                                   "(5) from above; raise max_len or lower min_len"),
    ({"min_len": 0}, "min_len must be an int ≥ 1, got 0: sequences have at least one position"),
    ({"max_heads": 0}, "max_heads must be an int ≥ 1, got 0: an attention call has at least "
                       "one head"),
    ({"max_heads": True}, "max_heads must be an int ≥ 1, got True"),
    ({"max_dim": 2.5}, "max_dim must be an int ≥ 1, got 2.5: the head dimension E is at least 1"),
    ({"max_batch_dims": -1}, "max_batch_dims must be an int ≥ 0, got -1: use 0 for no batch dims"),
    ({"gqa": 1}, "gqa must be True or False, got 1"),
    ({"equal_lengths": "yes"}, "equal_lengths must be True or False, got 'yes'"),
])
def test_attention_shapes_checks_its_arguments_at_once(kwargs, message):
    with pytest.raises(ValueError) as info:
        attention_shapes(**kwargs)  # eagerly: before any example is drawn
    assert str(info.value).startswith(message)


@pytest.mark.parametrize("args, kwargs, message", [
    ((), {"dtype": "float8"}, "dtype must be one of ['float64', 'float32', 'float16', "
                              "'bfloat16'] or a strategy of them, got 'float8'"),
    ((), {"mask": "causal"}, "mask must be one of ['none', 'bool', 'float'] or a strategy of "
                             "them, got 'causal'"),
    (((1, 2, 3),), {}, "shapes must be an AttentionShapes, a strategy of them (e.g. "
                       "attention_shapes(max_len=5)) or None, got (1, 2, 3)"),
])
def test_attention_problems_checks_its_arguments_at_once(args, kwargs, message):
    with pytest.raises(ValueError) as info:
        attention_problems(*args, **kwargs)
    assert str(info.value) == message


@FEW
@given(attention_shapes(max_batch_dims=1, max_heads=2, max_len=5, max_dim=4, min_len=2))
def test_shapes_stay_within_their_bounds(shapes):
    assert isinstance(shapes, AttentionShapes)
    assert len(shapes.batch) <= 1 and all(b in (1, 2) for b in shapes.batch)
    assert 1 <= shapes.heads_kv <= 2 and shapes.heads_q == shapes.heads_kv
    assert 2 <= shapes.len_q <= 5 and 2 <= shapes.len_k <= 5
    assert 1 <= shapes.dim <= 4 and shapes.dim_v in (shapes.dim, max(1, shapes.dim // 2) + 1)


@FEW
@given(attention_shapes(max_heads=2, gqa=True, equal_lengths=True))
def test_gqa_shapes_group_query_heads_and_equal_lengths_hold(shapes):
    assert shapes.heads_q // shapes.heads_kv in (2, 3)
    assert shapes.heads_q % shapes.heads_kv == 0
    assert shapes.len_q == shapes.len_k


@FEW
@given(attention_problems(dtype=st.sampled_from(list(DTYPE_BY_NAME)),
                          mask=st.sampled_from(MASK_CHOICES)))
def test_materialize_is_deterministic_and_well_formed(problem):
    first, second = materialize(problem), materialize(problem)
    assert first.keys() == second.keys()
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])
    sh, dtype = problem.shapes, DTYPE_BY_NAME[problem.dtype]
    assert first["query"].shape == (*sh.batch, sh.heads_q, sh.len_q, sh.dim)
    assert first["key"].shape == (*sh.batch, sh.heads_kv, sh.len_k, sh.dim)
    assert first["value"].shape == (*sh.batch, sh.heads_kv, sh.len_k, sh.dim_v)
    assert all(first[n].dtype == dtype for n in ("query", "key", "value"))
    if problem.mask == "none":
        assert "attn_mask" not in first
        return
    mask = first["attn_mask"]
    assert mask.shape == (*sh.batch, sh.heads_q, sh.len_q, sh.len_k)
    visible = mask if problem.mask == "bool" else np.isfinite(mask)
    assert mask.dtype == (np.dtype(bool) if problem.mask == "bool" else dtype)
    assert visible.any(axis=-1).all()  # no row is empty: that is a check of its own


def test_a_problem_is_four_numbers_and_describes_itself():
    problem = AttentionProblem(AttentionShapes((2,), 4, 2, 3, 5, 8, 8), "float32", 7, "bool")
    assert problem.describe() == "[b2-h4/2-q3-k5-e8-float32] mask=bool seed=7"
    other_seed = materialize(problem._replace(seed=8))
    assert not np.array_equal(materialize(problem)["query"], other_seed["query"])


# --- the sdpa properties draw from the case-space axes (conformance/ops/sdpa_axes.py) ------

SDPA_PROPERTIES = [p for p in PROPERTIES if p.op == "sdpa"]


def _axis(name: str) -> tuple:
    return tuple(v.value for v in AXIS[name].values)


@pytest.mark.parametrize("prop", SDPA_PROPERTIES, ids=lambda p: p.name)
@FEW
@given(data=st.data())
def test_every_drawn_property_problem_is_made_of_axis_values(prop, data):
    options = tuple(sorted(prop.shapes.items()))
    mask = "none" if prop.mask == "none" else data.draw(st.sampled_from(("bool", "float")))
    problem = data.draw(axis_problems(options, "float64", mask))
    sh = problem.shapes
    assert {sh.len_q, sh.len_k} <= set(_axis("len_q")) and max(sh.len_q, sh.len_k) <= (
        PROPERTY_MAX_LEN)
    assert min(sh.len_q, sh.len_k) >= prop.shapes.get("min_len", 1)
    assert (sh.heads_q, sh.heads_kv) in _axis("heads")
    assert (sh.heads_q != sh.heads_kv) == bool(prop.shapes.get("gqa"))
    assert (sh.dim, sh.dim_v) in _axis("dims") and sh.batch in _axis("batch")
    assert problem.form is None if mask == "none" else problem.form in _axis("mask")
    if prop.shapes.get("equal_lengths"):
        assert sh.len_q == sh.len_k
    x = materialize(problem)
    if mask != "none":  # the form broadcasts, and no row is empty once broadcast
        full = np.broadcast_to(x["attn_mask"], (*x["query"].shape[:-1], sh.len_k))
        assert (full if mask == "bool" else np.isfinite(full)).any(axis=-1).all()


@FEW
@given(axis_shapes(lengths=(1, 64, 129), heads=((1, 1), (3, 3)), dims=((8, 8), (256, 256)),
                   batches=((), (4,)), max_work=1 << 17))
def test_axis_shapes_keep_each_call_within_the_budget_or_take_the_cheapest(shapes):
    work = (np.prod(shapes.batch) * shapes.heads_q * shapes.len_q * shapes.len_k
            * (shapes.dim + shapes.dim_v))
    cheapest = (shapes.batch, shapes.heads_q, shapes.dim) == ((), 1, 8)
    assert work <= 1 << 17 or cheapest


def test_a_value_added_to_an_axis_reaches_the_properties(monkeypatch):
    # 3 and (5, 5) are not axis values today: once added, some drawn problem has them
    assert 3 not in _axis("len_q") and (5, 5) not in _axis("heads")
    for name, extra in (("len_q", Value("3", 3, "test")), ("heads", Value("h5", (5, 5), "t"))):
        monkeypatch.setitem(AXIS, name, Axis(name, (*AXIS[name].values, extra)))
    axis_problems.cache_clear()
    try:
        strategy = axis_problems((), "float64", "none")
        found = find(strategy, lambda p: p.shapes.len_q == 3 and p.shapes.heads_q == 5,
                     settings=settings(max_examples=2000, database=None))
        assert (found.shapes.len_q, found.shapes.heads_q) == (3, 5)
    finally:
        axis_problems.cache_clear()


def test_mask_shape_follows_the_form():
    problem = AttentionProblem(AttentionShapes((2, 3), 4, 4, 5, 7, 8, 8), "float64", 1, "bool")
    assert mask_shape(problem) == (2, 3, 4, 5, 7)
    assert mask_shape(problem._replace(form=("b", "1", "1", "k"))) == (2, 3, 1, 1, 7)
    assert mask_shape(problem._replace(form=("1", "k"))) == (1, 7)
    assert materialize(problem._replace(form=("h", "q", "k")))["attn_mask"].shape == (4, 5, 7)
    assert "form=(1, k)" in problem._replace(form=("1", "k")).describe()


def test_axis_shapes_and_forms_are_checked_at_once():
    with pytest.raises(ValueError, match="lengths must hold at least one value"):
        axis_shapes(lengths=(), heads=((1, 1),), dims=((8, 8),), batches=((),))
    with pytest.raises(ValueError, match="forms must be tuples of"):
        attention_problems(forms=(("x", "k"),))
