"""The properties of the ops over many sequences: packing, page_permutation, unused_slots.

Their strategies draw what they claim (length mixes, page sizes, shared pages), the page
layouts they build hold the same sequences, each property passes the reference and the
correct NumPy zoo, fails the mutants it exists for with a message naming the law, and is
skipped, never passed, for an adapter that supports none of its examples.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from correct.numpy_ops import NUMPY_OPS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutants import MUTANTS

import conformance
from conformance.adapters.invoke import InProcessInvoker
from conformance.adapters.load import resolve
from conformance.checks import CHECKS
from conformance.checks.base import RunContext
from conformance.checks.properties import check_property
from conformance.checks.property_bodies import PROPERTIES, causal_choices
from conformance.ops.paged import paged_layout
from conformance.ops.varlen import pack
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED, SKIPPED
from conformance.strategies import (
    PAGE_SIZES,
    RaggedProblem,
    materialize_sequences,
    paged_problems,
    sequence_lengths,
    shared_prefix_table,
    varlen_problems,
)
from reference.paged import gather_sequence

RAGGED = {p.name: p for p in PROPERTIES if p.op != "sdpa"}
FEW = settings(max_examples=30, deadline=None, database=None,
               suppress_health_check=list(HealthCheck))


def _context(adapter, spec: str = "test") -> RunContext:
    resolved = resolve(spec, obj=adapter) if not isinstance(adapter, str) else resolve(adapter)
    return RunContext(resolved, InProcessInvoker(resolved), PROFILES["quick"], 1)


def _run(name: str, adapter, spec: str = "test"):
    [r] = check_property(RAGGED[name])(_context(adapter, spec), RAGGED[name].op)
    return r


# -- the check table -------------------------------------------------------------------


def test_each_ragged_property_is_a_check_of_its_op_before_numeric():
    names = [c.name for c in CHECKS]
    assert set(RAGGED) == {"packing", "page_permutation", "unused_slots"}
    for prop in RAGGED.values():
        [check] = [c for c in CHECKS if c.name == prop.name]
        assert check.ops == (prop.op,)
        assert names.index(prop.name) < names.index("numeric")


# -- strategies --------------------------------------------------------------------------


@FEW
@given(sequence_lengths(6, max_seqs=4, page=5))
def test_length_mixes_stay_in_bounds(lens):
    assert 1 <= len(lens) <= 4 and all(0 <= n <= 16 for n in lens)


def test_length_mixes_reach_zeros_one_long_and_page_boundaries():
    seen = {"zero": False, "long": False, "boundary": False}

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(sequence_lengths(6, max_seqs=4, page=16))
    def draw(lens):
        seen["zero"] |= 0 in lens and len(lens) > 1
        seen["long"] |= max(lens) >= 6 and sum(n <= 2 for n in lens) >= 2
        seen["boundary"] |= any(n in (15, 16, 17, 31, 32, 33) for n in lens)

    draw()
    assert seen == {"zero": True, "long": True, "boundary": True}


@FEW
@given(paged_problems("float32", causals=("none", "bottom_right"), gqa=True))
def test_paged_problems_are_consistent(p):
    assert p.page in PAGE_SIZES and p.dtype == "float32" and p.causal in ("none", "bottom_right")
    assert len(set(p.lens_q)) == 1 and 1 <= p.lens_q[0] <= 3
    assert p.heads_q % p.heads_kv == 0 and p.heads_q // p.heads_kv <= 3
    assert all(n >= p.shared_pages * p.page for n in p.lens_k)


@FEW
@given(varlen_problems(causals=("none",)))
def test_varlen_problems_without_gqa_or_causal(p):
    assert p.heads_q == p.heads_kv and p.causal == "none" and p.page == 0
    assert len(p.lens_q) == len(p.lens_k)


@pytest.mark.parametrize("bad", [{"dtype": "float8"}, {"causals": ("diagonal",)},
                                 {"causals": ()}, {"gqa": 1}])
def test_ragged_strategies_check_their_arguments(bad):
    with pytest.raises(ValueError, match="must be"):
        varlen_problems(**{"dtype": "float64", **bad})


def test_shared_prefix_sequences_share_their_first_keys():
    p = RaggedProblem((1, 1, 1), (9, 8, 10), 2, 1, 3, 3, "none", 4, 2, "float64", 5)
    (_, k0, v0), (_, k1, v1), (_, k2, _) = materialize_sequences(p)
    np.testing.assert_array_equal(k1[:8], k0[:8])
    np.testing.assert_array_equal(v1[:8], v0[:8])
    np.testing.assert_array_equal(k2[:8], k0[:8])
    assert not np.array_equal(k2[8:9], k0[8:9])


def test_shared_prefix_table_reuses_sequence_zeros_pages():
    table = shared_prefix_table([3, 2, 4], 1, np.arange(10, 20), width=5, pad=-1)
    assert table.tolist() == [[10, 11, 12, -1, -1], [10, 13, -1, -1, -1],
                              [10, 14, 15, 16, -1]]


# -- layouts ---------------------------------------------------------------------------


@FEW
@given(paged_problems(gqa=True), st.integers(0, 2**31 - 1))
def test_every_layout_holds_the_same_sequences(p, seed):
    sequences = materialize_sequences(p)
    keys, values = [s[1] for s in sequences], [s[2] for s in sequences]
    plain = paged_layout(keys, values, p.page)
    moved = paged_layout(keys, values, p.page, shared_pages=p.shared_pages, spare=2,
                         rng=np.random.default_rng(seed), pad="spare")
    for layout in (plain, moved):
        for b, n in enumerate(p.lens_k):
            row = layout["block_table"][b]
            np.testing.assert_array_equal(gather_sequence(layout["key_pages"], row, n), keys[b])
            np.testing.assert_array_equal(gather_sequence(layout["value_pages"], row, n),
                                          values[b])
    pad = moved["block_table"][:, -1]
    assert moved["unread"][pad].all(), "the padding names a spare page no sequence reads"
    assert plain["unread"].sum() == plain["key_pages"].shape[0] * p.page - sum(p.lens_k)


def test_pack_concatenates_and_offsets():
    seqs = [tuple(np.full((n, 1, 2), n, float) for _ in range(3)) for n in (2, 0, 3)]
    packed = pack(seqs)
    assert packed["cu_seqlens_q"].tolist() == [0, 2, 2, 5]
    assert packed["query"][:, 0, 0].tolist() == [2, 2, 3, 3, 3]


# -- verdicts ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(RAGGED))
@pytest.mark.parametrize("adapter", ["numpy", NUMPY_OPS], ids=["reference", "correct-numpy"])
def test_correct_implementations_pass(name, adapter):
    r = _run(name, adapter)
    assert (r.status, r.op) == (PASSED, RAGGED[name].op), r.message
    assert r.examples


# the mutants' 0 · NaN and inf · 0 warn in NumPy; the suite turns warnings into errors, and
# an adapter's warning is then its exception: the verdict would be about the warning
GARBAGE_WARNS = pytest.mark.filterwarnings("ignore::RuntimeWarning")


@GARBAGE_WARNS
@pytest.mark.parametrize(("name", "mutant", "words"), [
    ("packing", "varlen_keys_at_query_offsets", "alone differs from its rows of the pack"),
    ("packing", "varlen_ignores_cu_seqlens", "alone differs from its rows of the pack"),
    ("page_permutation", "paged_pool_read_as_packed", "the same pages shuffled"),
    ("page_permutation", "paged_block_table_ignored", "the same pages shuffled"),
    ("unused_slots", "paged_masked_tail_nan", "NaN in the output of sequence"),
    ("unused_slots", "paged_last_page_unbounded", "NaN in the output of sequence"),
])
def test_each_property_fails_its_mutants(name, mutant, words):
    r = _run(name, MUTANTS[mutant], f"mutant:{mutant}")
    assert r.status == FAILED
    head, law = r.message.splitlines()[0], RAGGED[name].description.splitlines()[0]
    assert head == f"{RAGGED[name].op} / {name}: {law}"
    assert "minimal failing example: [lens_q=" in r.message and words in r.message


def test_the_properties_do_not_catch_what_they_do_not_check():
    # a causal bug in every sequence alike is no packing or page law: numeric catches it
    assert _run("packing", MUTANTS["varlen_causal_dropped"], "m").status == PASSED
    assert _run("page_permutation", MUTANTS["paged_gqa_tile"], "m").status == PASSED


def _unsupported_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k):
    raise NotImplementedError("this build has no varlen kernel")


def _unsupported_paged(query, key_pages, value_pages, block_table, seq_lens):
    raise NotImplementedError("this build has no paged kernel")


UNSUPPORTED = conformance.adapter(
    SimpleNamespace(sdpa_varlen=_unsupported_varlen, paged_attention=_unsupported_paged),
    name="unsupported-ragged")


@pytest.mark.parametrize("name", sorted(RAGGED))
def test_a_property_no_example_of_which_ran_is_skipped(name):
    r = _run(name, UNSUPPORTED)
    assert (r.status, r.examples) == (SKIPPED, 0)
    assert r.message.startswith("unsupported: adapter raised NotImplementedError: this build")


def test_causal_choices_follow_the_adapters_parameters():
    assert causal_choices(_context(UNSUPPORTED), "sdpa_varlen") == ("none",)
    assert causal_choices(_context("numpy"), "paged_attention") == (
        "none", "top_left", "bottom_right")

    def no_alignment(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False):
        return query

    ctx = _context(conformance.adapter(SimpleNamespace(sdpa_varlen=no_alignment), name="x"))
    assert causal_choices(ctx, "sdpa_varlen") == ("none", "top_left")


@GARBAGE_WARNS
def test_unused_slots_failure_message_word_for_word():
    r = _run("unused_slots", MUTANTS["paged_masked_tail_nan"], "mutant:paged_masked_tail_nan")
    assert r.message == (
        "paged_attention / unused_slots: " + RAGGED["unused_slots"].description + "\n"
        "minimal failing example: [lens_q=[1] lens_k=[1] h1 e1v1-float64] causal=none "
        "page=16 shared_pages=0 seed=0\n"
        "NaN in the output of sequence 0 (seq_len 1) with garbage in 31 unread slot(s)\n"
        "repro: attnconf run --adapter mutant:paged_masked_tail_nan --profile quick --seed 1 "
        "--only unused_slots --case 'hypothesis[float64]'")
