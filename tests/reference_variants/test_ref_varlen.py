"""reference.sdpa_varlen against a row-by-row loop written here from the formula, against
one dense sdpa with a block-diagonal mask over the whole pack, and against torch
(per-sequence scaled_dot_product_attention and flex_attention's document mask)."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from reference.scaled_dot_product import sdpa
from reference.varlen import sdpa_varlen

ATOL = 1e-12  # float64 against float64, O(1) outputs


def offsets(lengths) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def packed(seed, lens_q, lens_k, heads=(4, 2), dim=8, dim_v=5):
    rng = np.random.default_rng(seed)
    hq, hk = heads
    return (rng.standard_normal((sum(lens_q), hq, dim)),
            rng.standard_normal((sum(lens_k), hk, dim)),
            rng.standard_normal((sum(lens_k), hk, dim_v)), offsets(lens_q), offsets(lens_k))


def loop_varlen(q, k, v, cu_q, cu_k, *, is_causal=False, bottom_right=False, window=None,
                softcap=None, slopes=None):
    """out[t, h] = Σ_j softmax_j(s_tj) v_j over the keys j of t's own sequence, one row at a
    time; s_tj = scale q·k (softcapped) − slope·|i' − j|; hidden keys dropped; empty rows 0."""
    out = np.zeros((q.shape[0], q.shape[1], v.shape[2]))
    group = q.shape[1] // k.shape[1]
    for b in range(len(cu_q) - 1):
        lq, lk = cu_q[b + 1] - cu_q[b], cu_k[b + 1] - cu_k[b]
        for i in range(lq):
            pos = i + (lk - lq if bottom_right else 0)
            for h in range(q.shape[1]):
                scores, vals = [], []
                for j in range(lk):
                    if is_causal and j > pos:
                        continue
                    if window and window[0] is not None and j < pos - window[0]:
                        continue
                    if window and window[1] is not None and j > pos + window[1]:
                        continue
                    s = q[cu_q[b] + i, h] @ k[cu_k[b] + j, h // group] / math.sqrt(q.shape[2])
                    if softcap:
                        s = softcap * math.tanh(s / softcap)
                    if slopes is not None:
                        s -= slopes[h] * abs(pos - j)
                    scores.append(s)
                    vals.append(v[cu_k[b] + j, h // group])
                if scores:
                    w = np.exp(np.array(scores) - max(scores))
                    out[cu_q[b] + i, h] = (w / w.sum()) @ np.array(vals)
    return out


MIXES = {
    "equal": ([4, 4, 4], [4, 4, 4]),
    "one-long-many-short": ([17, 1, 2, 1, 3], [17, 1, 2, 1, 3]),
    "zeros": ([0, 3, 0, 5, 2], [0, 3, 4, 6, 0]),  # empty sequence, queries without keys
    "cross": ([2, 5, 1], [7, 3, 9]),  # Lq ≠ Lk both ways
}


@pytest.mark.parametrize("mix", sorted(MIXES))
@pytest.mark.parametrize("flags", [
    {}, {"is_causal": True}, {"is_causal": True, "bottom_right": True},
    {"window": (2, 1)}, {"softcap": 0.7}, {"slopes": np.array([0.5, 0.25, 0.125, 1.0])},
], ids=["plain", "causal", "causal-br", "window", "softcap", "alibi"])
def test_varlen_equals_row_loop(mix, flags):
    q, k, v, cu_q, cu_k = packed(3, *MIXES[mix])
    expected = loop_varlen(q, k, v, cu_q, cu_k, **flags)
    kwargs = {"is_causal": flags.get("is_causal", False), "window": flags.get("window"),
              "softcap": flags.get("softcap"), "alibi_slopes": flags.get("slopes"),
              "causal_alignment": "bottom_right" if flags.get("bottom_right") else "top_left"}
    out = sdpa_varlen(q, k, v, cu_q, cu_k, enable_gqa=True, **kwargs)
    assert out.shape == (q.shape[0], 4, 5) and out.dtype == q.dtype
    np.testing.assert_allclose(out, expected, rtol=0, atol=ATOL)


def test_varlen_equals_block_diagonal_dense_sdpa():
    """One dense sdpa over the whole pack with a block-diagonal (document) mask."""
    lens = [3, 6, 1, 5]
    q, k, v, cu_q, cu_k = packed(4, lens, lens, heads=(2, 2))
    doc = np.repeat(np.arange(len(lens)), lens)
    pos = np.concatenate([np.arange(n) for n in lens])
    visible = (doc[:, None] == doc[None, :]) & (pos[None, :] <= pos[:, None])
    dense = sdpa(*(np.swapaxes(x, 0, 1) for x in (q, k, v)), visible)
    out, lse = sdpa_varlen(q, k, v, cu_q, cu_k, is_causal=True, return_lse=True)
    np.testing.assert_allclose(out, np.swapaxes(dense, 0, 1), rtol=0, atol=ATOL)
    _, dense_lse = sdpa(*(np.swapaxes(x, 0, 1) for x in (q, k, v)), visible, return_lse=True)
    assert lse.shape == (2, sum(lens))
    np.testing.assert_allclose(lse, dense_lse, rtol=0, atol=ATOL)


def test_packing_invariance_and_empty_rows():
    """Each sequence alone gives its rows of the pack; a sequence without keys gives zeros."""
    lens_q, lens_k = [3, 2, 4], [5, 0, 2]
    q, k, v, cu_q, cu_k = packed(5, lens_q, lens_k)
    out, lse = sdpa_varlen(q, k, v, cu_q, cu_k, enable_gqa=True, return_lse=True)
    for b in range(3):
        rows, keys = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        alone = sdpa_varlen(q[rows], k[keys], v[keys], offsets([lens_q[b]]),
                            offsets([lens_k[b]]), enable_gqa=True)
        np.testing.assert_allclose(out[rows], alone, rtol=0, atol=ATOL)
    assert np.all(out[3:5] == 0) and np.all(np.isneginf(lse[:, 3:5]))
    # no key at all: an empty sum, 0, whatever fully_masked says (as sdpa with Lk = 0)
    assert np.all(sdpa_varlen(q, k, v, cu_q, cu_k, enable_gqa=True, fully_masked="nan")[3:5] == 0)
    # sequence 2: Lq = 4 > Lk = 2, bottom-right causal hides every key of its first 2 rows
    nan_rows = sdpa_varlen(q, k, v, cu_q, cu_k, enable_gqa=True, fully_masked="nan",
                           is_causal=True, causal_alignment="bottom_right")
    assert np.isnan(nan_rows[5:7]).all() and np.isfinite(nan_rows[7:]).all()


@pytest.mark.slow  # a 16k-token pack through the blocked form: ~25 s on a loaded 2-core box
def test_long_pack_takes_the_blocked_path_per_sequence():
    """64 sequences, 16k tokens: memory per sequence only; equals a per-sequence sdpa."""
    rng = np.random.default_rng(6)
    lens = rng.integers(1, 200, size=63).tolist()
    lens.append(16384 - sum(lens))  # one long sequence: blocked inside reference.sdpa
    q, k, v, cu_q, cu_k = packed(7, lens, lens, heads=(1, 1), dim=16, dim_v=16)
    q, k, v = (x.astype(np.float32) for x in (q, k, v))
    out = sdpa_varlen(q, k, v, cu_q, cu_k, is_causal=True)
    assert out.shape == (16384, 1, 16) and out.dtype == np.float32
    last = slice(cu_q[-2], cu_q[-1])
    prefix = sdpa(*(np.swapaxes(x[last][:300], 0, 1) for x in (q, k, v)), is_causal=True)
    # causal: the first 300 rows of the long sequence see only its first 300 keys
    np.testing.assert_allclose(out[last][:300], np.swapaxes(prefix, 0, 1), rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad, match", [
    ({"cu_seqlens_q": np.array([0, 3, 2, 10])}, "never decrease"),
    ({"cu_seqlens_q": np.array([3, 4, 2])}, "start at 0"),
    ({"cu_seqlens_q": np.array([0, 5.0, 10])}, "integer"),
    ({"cu_seqlens_k": np.array([0, 10])}, "same number of sequences"),
])
def test_bad_offsets_raise_one_line(bad, match):
    q, k, v, cu_q, cu_k = packed(8, [5, 5], [5, 5])
    args = {"cu_seqlens_q": cu_q, "cu_seqlens_k": cu_k, **bad}
    with pytest.raises(ValueError, match=match):
        sdpa_varlen(q, k, v, enable_gqa=True, **args)


# --- torch ---------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("causal", [False, True])
def test_varlen_against_torch_per_sequence_sdpa(causal):
    torch = pytest.importorskip("torch")
    lens = [6, 1, 9, 3]
    q, k, v, cu_q, cu_k = packed(9, lens, lens)
    out = sdpa_varlen(q, k, v, cu_q, cu_k, is_causal=causal, enable_gqa=True)
    for b in range(len(lens)):
        rows = slice(cu_q[b], cu_q[b + 1])
        t = [torch.from_numpy(np.ascontiguousarray(np.swapaxes(x[rows], 0, 1)))
             for x in (q, k, v)]
        expected = torch.nn.functional.scaled_dot_product_attention(
            *t, is_causal=causal, enable_gqa=True).numpy()
        np.testing.assert_allclose(out[rows], np.swapaxes(expected, 0, 1), rtol=0, atol=ATOL)


@pytest.mark.torch
def test_varlen_against_flex_attention_document_mask():
    pytest.importorskip("torch")
    flex = pytest.importorskip("torch.nn.attention.flex_attention")
    import torch

    lens = [5, 2, 7]
    q, k, v, cu_q, cu_k = packed(10, lens, lens, heads=(2, 2), dim_v=8)
    doc = torch.from_numpy(np.repeat(np.arange(3), lens))

    def document_causal(b, h, qi, kj):
        return (doc[qi] == doc[kj]) & (kj <= qi)

    qt, kt, vt = (torch.from_numpy(np.swapaxes(x, 0, 1)[None].copy()) for x in (q, k, v))
    with warnings.catch_warnings():  # eager flex materialises the scores: fine at 14 tokens
        warnings.filterwarnings("ignore", message=".*flex_attention called without torch.compile")
        expected = flex.flex_attention(qt, kt, vt, score_mod=lambda s, b, h, i, j: torch.where(
            document_causal(b, h, i, j), s, -float("inf")))
    out = sdpa_varlen(q, k, v, cu_q, cu_k, is_causal=True)
    np.testing.assert_allclose(out, np.swapaxes(expected[0].numpy(), 0, 1), rtol=0, atol=ATOL)
