"""The built-in torch adapter's ragged ops on flex_attention (conformance/adapters/torch_ragged.py).

The call planning and the inverse block table are pure functions, checked on
their own; the ops are checked against ``reference.sdpa_varlen`` and
``reference.paged_attention`` in float64 with the call limits shrunk, so that
small inputs take the paths the long cases take (long sequences cut into
pieces, short ones sharing a call, several sequences over one compacted pool).
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from conformance.adapters import torch_ragged as tr
from reference import paged_attention as ref_paged
from reference import sdpa_varlen as ref_varlen

pytestmark = pytest.mark.torch
torch = pytest.importorskip("torch")

ATOL = 1e-12  # float64 against the float64 reference: a few ulps of an O(1) output


def options(is_causal=False, alignment="top_left", window=None) -> tr.Options:
    return tr.Options(is_causal, alignment, window, None, None, None, False)


@pytest.fixture
def small_calls(monkeypatch):
    """Limits small enough that a few dozen tokens are cut and shared like 16k are."""
    monkeypatch.setattr(tr, "ROWS_PER_PIECE", 4)
    monkeypatch.setattr(tr, "SHARED_AREA", 64)


# --- planning ---------------------------------------------------------------------


@pytest.mark.parametrize(("rows", "lq", "lk", "opts", "expected"), [
    ((0, 4), 4, 4, options(), (0, 4)),
    ((0, 2), 4, 4, options(True), (0, 2)),
    ((0, 2), 2, 5, options(True, "bottom_right"), (0, 5)),
    ((0, 1), 4, 2, options(True, "bottom_right"), (0, 0)),  # row 0 sits before key 0
    ((5, 7), 9, 9, options(window=(2, 1)), (3, 8)),
    ((5, 7), 9, 9, options(window=(None, 0)), (0, 7)),
])
def test_visible_keys(rows, lq, lk, opts, expected):
    assert tr.visible_keys(*rows, lq, lk, opts) == expected


@pytest.mark.parametrize("opts", [options(), options(True), options(True, "bottom_right"),
                                  options(False, "bottom_right", (3, 0))])
def test_plan_covers_every_row_once_within_limits(opts):
    lens_q, lens_k = [0, 9, 1, 30, 2, 5, 4], [3, 9, 0, 30, 7, 2, 4]
    calls = tr.plan_calls(lens_q, lens_k, opts, heads_q=2, dims=8, rows_per_piece=8,
                          shared_area=100)
    covered = [(p.seq, r) for call in calls for p in call for r in range(p.row_lo, p.row_hi)]
    seeing = {(b, r) for b, (lq, lk) in enumerate(zip(lens_q, lens_k, strict=True))
              for r in range(lq) if tr.visible_keys(r, r + 1, lq, lk, opts)[1]
              > tr.visible_keys(r, r + 1, lq, lk, opts)[0]}
    assert len(covered) == len(set(covered))  # no row twice
    assert seeing <= set(covered)  # every row that sees a key is computed
    assert all(lens_k[b] > 0 for b, _ in covered)
    for call in calls:
        assert all(p.row_hi - p.row_lo <= 8 for p in call)
        rows = sum(p.row_hi - p.row_lo for p in call)
        keys = sum(p.key_hi - p.key_lo for p in call)
        assert len(call) == 1 or rows * keys <= 100
        for p in call:  # a piece reads exactly the keys its rows can see
            assert (p.key_lo, p.key_hi) == tr.visible_keys(p.row_lo, p.row_hi, lens_q[p.seq],
                                                            lens_k[p.seq], opts)


def test_plan_of_the_16k_pack_never_scores_the_whole_pack():
    from conformance.ops.varlen import long_pack

    lens = long_pack()
    calls = tr.plan_calls(lens, lens, options(True), heads_q=2, dims=128)
    biggest = max(tr.call_cost(sum(p.row_hi - p.row_lo for p in c),
                               sum(p.key_hi - p.key_lo for p in c), 2, 128) for c in calls)
    assert biggest <= tr.ELEMENTS_PER_CALL < 2 * sum(lens) ** 2 // 16


def test_plan_of_the_256_sequence_decode_never_holds_batch_times_pool():
    from conformance.ops.paged import long_decode_lens

    lens = long_decode_lens()
    calls = tr.plan_calls([1] * len(lens), lens, options(), heads_q=8, dims=128, page=16)
    assert sorted(p.seq for c in calls for p in c) == list(range(len(lens)))
    for call in calls:
        pool = sum(tr._span(p, 16) for p in call)
        assert tr.call_cost(len(call), pool, 8, 128) <= tr.ELEMENTS_PER_CALL
        assert len(call) < len(lens) // 8


def test_page_occurrences_number_repeats():
    assert tr.page_occurrences([3, 5, 3, 3, 0]) == [(3, 0), (5, 0), (3, 1), (3, 2), (0, 0)]


def test_inverse_table_shares_pages_across_sequences_and_copies_repeats():
    tables = [[7, 2, 9], [7, 2, 4], [5, 5]]  # 0 and 1 share a prefix, 2 names page 5 twice
    pieces = [tr.Piece(0, 0, 1, 0, 12), tr.Piece(1, 0, 1, 0, 10), tr.Piece(2, 0, 1, 0, 8)]
    pool, inverse = tr.inverse_table(pieces, tables, page=4)
    assert pool == [7, 2, 9, 4, 5, 5]
    assert inverse == [[0, 1, 2, -1, -1, -1], [0, 1, -1, 2, -1, -1], [-1, -1, -1, -1, 0, 1]]
    pos = tr.slot_positions(torch, inverse, pieces, page=4)
    assert pos[1, 12:16].tolist() == [8, 9, -1, -1]  # sequence 1 has 10 keys
    assert pos[2, 16:24].tolist() == list(range(8))
    assert pos[2, :16].tolist() == [-1] * 16


# --- the ops against the reference ------------------------------------------------


def packed(rng, lens_q, lens_k, heads=(4, 2), dim=8, dim_v=6):
    hq, hk = heads
    q = rng.standard_normal((sum(lens_q), hq, dim))
    k = rng.standard_normal((sum(lens_k), hk, dim))
    v = rng.standard_normal((sum(lens_k), hk, dim_v))
    return q, k, v, *(np.concatenate([[0], np.cumsum(n)]).astype(np.int32)
                      for n in (lens_q, lens_k))


def as_torch(*arrays):
    return [torch.from_numpy(np.ascontiguousarray(a)) for a in arrays]


VARLEN_OPTIONS = [
    {},
    {"is_causal": True},
    {"is_causal": True, "causal_alignment": "bottom_right", "window": (3, 0)},
    {"window": (2, 1), "scale": 0.0},
    {"softcap": 0.7, "alibi_slopes": np.array([0.5, 0.25, 0.125, 1.0]), "is_causal": True},
]


@pytest.mark.parametrize("opts", VARLEN_OPTIONS)
def test_varlen_matches_reference_with_pieces_and_shared_calls(small_calls, opts):
    rng = np.random.default_rng(0)
    lens_q, lens_k = [3, 0, 11, 1, 2, 5, 4], [3, 2, 9, 0, 6, 5, 1]
    q, k, v, cu_q, cu_k = packed(rng, lens_q, lens_k)
    expected, lse_expected = ref_varlen(q, k, v, cu_q, cu_k, enable_gqa=True, return_lse=True,
                                        **opts)
    topts = {n: torch.from_numpy(x) if isinstance(x, np.ndarray) else x
             for n, x in opts.items()}
    out, lse = tr.sdpa_varlen(*as_torch(q, k, v, cu_q, cu_k), enable_gqa=True, return_lse=True,
                              **topts)
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=ATOL)
    assert lse.dtype == torch.float64
    np.testing.assert_allclose(lse.numpy(), lse_expected, rtol=0, atol=ATOL)


def test_varlen_float32_and_no_lse():
    rng = np.random.default_rng(1)
    q, k, v, cu_q, cu_k = (x.astype(np.float32) if x.dtype.kind == "f" else x
                           for x in packed(rng, [5, 9, 2], [5, 9, 2]))
    out = tr.sdpa_varlen(*as_torch(q, k, v, cu_q, cu_k), is_causal=True, enable_gqa=True)
    expected = ref_varlen(*(x.astype(np.float64) if x.dtype.kind == "f" else x
                            for x in (q, k, v, cu_q, cu_k)), is_causal=True, enable_gqa=True)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-5)


def test_varlen_nan_of_one_sequence_stays_in_it(small_calls, monkeypatch):
    """A NaN value of sequence 1 must not reach sequences 0 and 2 sharing its call."""
    monkeypatch.setattr(tr, "SHARED_AREA", 10_000)
    rng = np.random.default_rng(2)
    q, k, v, cu_q, cu_k = packed(rng, [3, 3, 3], [3, 3, 3])
    v[4, 0, 0] = np.nan
    assert len(tr.plan_calls([3, 3, 3], [3, 3, 3], options(), heads_q=4, dims=14,
                             rows_per_piece=4, shared_area=10_000)) == 1
    out = tr.sdpa_varlen(*as_torch(q, k, v, cu_q, cu_k), enable_gqa=True).numpy()
    expected = ref_varlen(q, k, v, cu_q, cu_k, enable_gqa=True)
    assert np.isnan(out[3:6]).any()
    np.testing.assert_allclose(out[[0, 1, 2, 6, 7, 8]], expected[[0, 1, 2, 6, 7, 8]], rtol=0,
                               atol=ATOL)


def paged_inputs(rng, lens, page, lq=1, heads=(4, 2), dim=8, garbage=np.nan, shared=0,
                 repeat=False):
    """A shuffled pool with ``shared`` prefix pages of sequence 0 in every table, the last
    sequence naming one of its pages twice when ``repeat``, garbage in unread slots."""
    hq, hk = heads
    counts = [-(-n // page) for n in lens]
    num_pages = sum(counts) + 3
    ids = list(rng.permutation(num_pages))
    table = np.full((len(lens), max(counts) + 2), -1, dtype=np.int32)
    for b, c in enumerate(counts):
        start = min(shared, c) if b else 0
        table[b, :start] = table[0, :start]
        table[b, start:c] = [ids.pop() for _ in range(c - start)]
    if repeat:
        b = len(lens) - 1
        assert counts[b] >= 3
        table[b, 2] = table[b, 0]
    kp, vp = (rng.standard_normal((num_pages, page, hk, dim)) for _ in range(2))
    read = np.zeros((num_pages, page), bool)
    for b, n in enumerate(lens):
        for t in range(n):
            read[table[b, t // page], t % page] = True
    kp[~read], vp[~read] = garbage, garbage
    query = rng.standard_normal((len(lens), lq, hq, dim))
    return query, kp, vp, table, np.asarray(lens, dtype=np.int32)


PAGED_CASES = [
    ({}, {}),
    ({"garbage": np.inf}, {}),
    ({"garbage": -np.inf, "shared": 2}, {}),
    ({"repeat": True}, {}),
    ({"repeat": True, "shared": 1, "lq": 3}, {"is_causal": True}),
    ({"lq": 4}, {"is_causal": True, "causal_alignment": "top_left"}),
    ({}, {"window": (5, 0)}),
    ({}, {"softcap": 0.5, "alibi_slopes": np.array([0.3, 0.1, 0.7, 0.2])}),
    ({"lq": 2}, {"page_layout": "HND", "scale": 0.4}),
]


@pytest.mark.parametrize(("recipe", "opts"), PAGED_CASES)
def test_paged_matches_reference_over_compacted_pools(small_calls, monkeypatch, recipe, opts):
    monkeypatch.setattr(tr, "SHARED_AREA", 400)  # a few sequences per pool
    rng = np.random.default_rng(3)
    query, kp, vp, table, lens = paged_inputs(rng, [9, 0, 13, 4, 1, 16, 11], 4, **recipe)
    if opts.get("page_layout") == "HND":
        kp, vp = np.swapaxes(kp, 1, 2).copy(), np.swapaxes(vp, 1, 2).copy()
    expected, lse_expected = ref_paged(query, kp, vp, table, lens, enable_gqa=True,
                                       return_lse=True, **opts)
    topts = {n: torch.from_numpy(x) if isinstance(x, np.ndarray) else x
             for n, x in opts.items()}
    out, lse = tr.paged_attention(*as_torch(query, kp, vp, table, lens), enable_gqa=True,
                                  return_lse=True, **topts)
    assert np.isfinite(expected).all() and np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(lse.numpy(), lse_expected, rtol=0, atol=ATOL)


def test_paged_garbage_would_leak_without_zeroed_values():
    """Why unread slots are zeroed: a masked score still multiplies its NaN value (0 · NaN)."""
    from torch.nn.attention.flex_attention import flex_attention

    q = torch.ones(1, 1, 1, 4, dtype=torch.float64)
    k = torch.ones(1, 1, 2, 4, dtype=torch.float64)
    v = torch.cat([q, torch.full_like(q, np.nan)], dim=2)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*without torch.compile")
        out = flex_attention(q, k, v, score_mod=lambda s, b, h, i, j: torch.where(
            j < 1, s, -np.inf))
    assert torch.isnan(out).all()


def test_unknown_alignment_and_layout_are_refused():
    rng = np.random.default_rng(4)
    q, k, v, cu_q, cu_k = packed(rng, [2], [2])
    with pytest.raises(ValueError, match="causal_alignment"):
        tr.sdpa_varlen(*as_torch(q, k, v, cu_q, cu_k), causal_alignment="center",
                       enable_gqa=True)
    query, kp, vp, table, lens = paged_inputs(rng, [3], 4)
    with pytest.raises(NotImplementedError, match="page_layout"):
        tr.paged_attention(*as_torch(query, kp, vp, table, lens), page_layout="NDH",
                           enable_gqa=True)
