"""reference.multi_head_attention against torch.nn.MultiheadAttention (eval, float64),
in every combination of its options."""

from __future__ import annotations

import itertools
from contextlib import nullcontext

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from reference.multi_head import multi_head_attention  # noqa: E402

ATOL = 1e-12
EMBED, HEADS, BATCH, LEN_Q, LEN_K = 8, 2, 3, 5, 6


OPTIONS = list(itertools.product(
    (False, True),  # batch_first
    (True, False),  # bias
    ("none", "bool", "float"),  # key_padding_mask
    ("none", "bool2d", "float2d", "bool3d", "float3d"),  # attn_mask
    (True, False),  # need_weights
    (True, False),  # average_attn_weights
    (False, True),  # unbatched
    (False, True),  # self-attention (query is key is value: torch's fast path may run)
))


def _option_id(opts) -> str:
    batch_first, bias, kpm, attn, need, avg, unbatched, self_attn = opts
    return "-".join([
        "bf" if batch_first else "sf", "bias" if bias else "nobias", f"kpm_{kpm}",
        f"mask_{attn}", "weights" if need else "noweights", "avg" if avg else "perhead",
        "unbatched" if unbatched else "batched", "self" if self_attn else "cross",
    ])


def _module(bias: bool, seed: int):
    torch.manual_seed(seed)  # the module's own init only; inputs come from default_rng
    mha = torch.nn.MultiheadAttention(EMBED, HEADS, bias=bias, batch_first=False,
                                      dtype=torch.float64).eval()
    if bias:  # torch initialises in-projection biases to 0: make them matter
        rng = np.random.default_rng(seed)
        with torch.no_grad():
            mha.in_proj_bias.copy_(torch.from_numpy(rng.standard_normal(3 * EMBED)))
            mha.out_proj.bias.copy_(torch.from_numpy(rng.standard_normal(EMBED)))
    return mha


def _weights(mha):
    def arr(t):
        return None if t is None else t.detach().numpy().copy()

    return (arr(mha.in_proj_weight), arr(mha.in_proj_bias), arr(mha.out_proj.weight),
            arr(mha.out_proj.bias))


def _mask(kind: str, shape, rng):
    """Random torch-convention mask (True = NOT allowed) that never hides key 0."""
    if kind == "none":
        return None
    hide = rng.random(shape) < 0.35
    hide[..., 0] = False
    if kind.startswith("bool"):
        return hide
    return np.where(hide, -np.inf, rng.standard_normal(shape))


def _inputs(opts, rng):
    batch_first, _, kpm_kind, attn_kind, _, _, unbatched, self_attn = opts
    n = 1 if unbatched else BATCH
    len_k = LEN_Q if self_attn else LEN_K

    def seq(length):
        if unbatched:
            return rng.standard_normal((length, EMBED))
        shape = (n, length, EMBED) if batch_first else (length, n, EMBED)
        return rng.standard_normal(shape)

    query = seq(LEN_Q)
    key, value = (query, query) if self_attn else (seq(len_k), seq(len_k))
    kpm = _mask(kpm_kind, (len_k,) if unbatched else (n, len_k), rng)
    attn_shape = (LEN_Q, len_k) if attn_kind.endswith("2d") else (n * HEADS, LEN_Q, len_k)
    return query, key, value, kpm, _mask(attn_kind, attn_shape, rng)


def _mismatch_warning(kpm, attn):
    """torch deprecates a bool key_padding_mask with a float attn_mask (or vice versa)."""
    if kpm is None or attn is None or kpm.dtype == attn.dtype:
        return nullcontext()
    return pytest.warns(UserWarning, match="Support for mismatched key_padding_mask")


@pytest.mark.parametrize("opts", OPTIONS, ids=[_option_id(o) for o in OPTIONS])
def test_mha_matches_torch(opts) -> None:
    batch_first, bias, _, _, need, avg, _, self_attn = opts
    seed = OPTIONS.index(opts)
    rng = np.random.default_rng(seed)
    mha = _module(bias, seed)
    mha.batch_first = batch_first
    query, key, value, kpm, attn = _inputs(opts, rng)
    t = {name: torch.from_numpy(x) for name, x in (("query", query), ("key", key),
                                                    ("value", value))}
    if self_attn:
        t["key"] = t["value"] = t["query"]
    masks = {name: None if m is None else torch.from_numpy(m)
             for name, m in (("key_padding_mask", kpm), ("attn_mask", attn))}
    with torch.no_grad(), _mismatch_warning(kpm, attn):
        out, weights = mha(**t, **masks, need_weights=need, average_attn_weights=avg)
    got_out, got_weights = multi_head_attention(
        query, key, value, HEADS, *_weights(mha), key_padding_mask=kpm, attn_mask=attn,
        need_weights=need, average_attn_weights=avg, batch_first=batch_first)
    assert got_out.shape == tuple(out.shape)
    np.testing.assert_allclose(got_out, out.numpy(), rtol=0, atol=ATOL)
    if not need:
        assert got_weights is None and weights is None
        return
    assert got_weights.shape == tuple(weights.shape)
    np.testing.assert_allclose(got_weights, weights.numpy(), rtol=0, atol=ATOL)


def test_option_grid_is_complete() -> None:
    assert len(OPTIONS) == 2 * 2 * 3 * 5 * 2 * 2 * 2 * 2


def test_fully_masked_row() -> None:
    """A query row with every key hidden: weights 0 and output = out_proj bias.

    torch agrees when need_weights=False (SDPA path, zeros); with need_weights=True
    it runs a plain softmax and returns NaN for that row (documented difference)."""
    rng = np.random.default_rng(99)
    mha = _module(True, 99)
    x = rng.standard_normal((4, 1, EMBED))
    hide = np.zeros((4, 4), dtype=bool)
    hide[2] = True
    got, weights = multi_head_attention(x, x, x, HEADS, *_weights(mha), attn_mask=hide)
    np.testing.assert_allclose(got[2, 0], _weights(mha)[3], rtol=0, atol=ATOL)
    np.testing.assert_array_equal(weights[0, 2], 0.0)
    tx, tm = torch.from_numpy(x), torch.from_numpy(hide)
    with torch.no_grad():
        fast, _ = mha(tx, tx, tx, attn_mask=tm, need_weights=False)
        slow, _ = mha(tx, tx, tx, attn_mask=tm, need_weights=True)
    np.testing.assert_allclose(got, fast.numpy(), rtol=0, atol=ATOL)
    assert np.isnan(slow.numpy()[2]).all(), "torch changed: update multi_head.py's docstring"
    np.testing.assert_allclose(np.delete(got, 2, 0), np.delete(slow.numpy(), 2, 0), atol=ATOL)


def test_inputs_not_modified() -> None:
    rng = np.random.default_rng(5)
    mha = _module(True, 5)
    arrays = [rng.standard_normal((LEN_Q, BATCH, EMBED)) for _ in range(3)]
    kpm = rng.random((BATCH, LEN_Q)) < 0.3
    params = _weights(mha)
    before = [a.copy() for a in [*arrays, kpm, *params]]
    multi_head_attention(*arrays, HEADS, *params, key_padding_mask=kpm)
    for b, a in zip(before, [*arrays, kpm, *params], strict=True):
        np.testing.assert_array_equal(a, b)
