"""conformance.strategies: arguments checked eagerly, shapes within their bounds, problems
materialized deterministically from their seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.cases import AttentionShapes
from conformance.strategies import (
    MASK_CHOICES,
    AttentionProblem,
    attention_problems,
    attention_shapes,
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
