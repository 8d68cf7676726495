"""Bad input raises ValueError/TypeError whose message names the argument (and the
shapes or dtype it got), for every reference entry point owned here."""

from __future__ import annotations

import numpy as np
import pytest

# submodules, not the package: under pytest ``tests/`` is on sys.path, so a bare
# ``reference`` may resolve to the tests/reference namespace directory
from reference.blocked import blocked_sdpa
from reference.decode import decode_step
from reference.encoder import EncoderLayerWeights, encoder_layer
from reference.multi_head import multi_head_attention
from reference.position_wise import feed_forward
from reference.scaled_dot_product import sdpa
from reference.scaled_dot_product_backward import sdpa_backward

_rng = np.random.default_rng(0)
Q = _rng.standard_normal((2, 4, 5, 8))  # (B, Hq, Lq, E)
K = _rng.standard_normal((2, 2, 6, 8))  # (B, Hk, Lk, E)
V = _rng.standard_normal((2, 2, 6, 3))  # (B, Hk, Lk, Ev)
X = _rng.standard_normal((5, 2, 8))  # MHA input (L, N, E)
W_IN, W_OUT = _rng.standard_normal((24, 8)), _rng.standard_normal((8, 8))


def _mha(**kwargs):
    args = dict(query=X, key=X, value=X, num_heads=2, in_proj_weight=W_IN, in_proj_bias=None,
                out_proj_weight=W_OUT, out_proj_bias=None)
    options = {k: kwargs.pop(k) for k in ("key_padding_mask", "attn_mask") if k in kwargs}
    args.update(kwargs)
    return multi_head_attention(*args.values(), **options)


def _ffn(x=None, w1=None, b1=None, w2=None, b2=None, activation="relu"):
    x = _rng.standard_normal((3, 8)) if x is None else x
    w1 = _rng.standard_normal((8, 16)) if w1 is None else w1
    w2 = _rng.standard_normal((16, 8)) if w2 is None else w2
    return feed_forward(x, w1, b1, w2, b2, activation)


GQA_3_OF_2 = _rng.standard_normal((2, 3, 5, 8))

CASES = {
    # id: (callable, exception type, regex the message must match)
    "sdpa-head-dim": (lambda: sdpa(Q, K[..., :7], V, enable_gqa=True), ValueError,
                      r"query and key .*head\) dim E.*\(2, 4, 5, 8\).*\(2, 2, 6, 7\)"),
    "sdpa-heads-without-gqa": (lambda: sdpa(Q, K, V), ValueError,
                               r"query heads \(4\) != key heads \(2\).*enable_gqa"),
    "sdpa-gqa-not-divisible": (lambda: sdpa(GQA_3_OF_2, K, V, enable_gqa=True), ValueError,
                               r"enable_gqa.*query heads \(3\).*key heads \(2\).*"
                               r"query shape \(2, 3, 5, 8\), key shape \(2, 2, 6, 8\)"),
    "sdpa-key-value-length": (lambda: sdpa(Q, K, V[..., :5, :], enable_gqa=True), ValueError,
                              r"key and value .*\(2, 2, 6, 8\).*\(2, 2, 5, 3\)"),
    "sdpa-batch": (lambda: sdpa(_rng.standard_normal((3, 4, 5, 8)), K, V, enable_gqa=True),
                   ValueError, r"batch dims .*query shape \(3, 4, 5, 8\)"),
    "sdpa-query-ndim": (lambda: sdpa(Q[0, 0], K, V), ValueError, r"query .*3 dims.*\(5, 8\)"),
    "sdpa-mask-broadcast": (lambda: sdpa(Q, K, V, np.ones((5, 7), bool), enable_gqa=True),
                            ValueError, r"attn_mask of shape \(5, 7\) .*\(2, 4, 5, 6\)"),
    "sdpa-mask-nan": (lambda: sdpa(Q, K, V, np.full((5, 6), np.nan), enable_gqa=True),
                      ValueError, r"attn_mask \(shape \(5, 6\)\) contains NaN"),
    "sdpa-int-query": (lambda: sdpa(Q.astype(np.int64), K, V, enable_gqa=True), TypeError,
                       r"query must be a floating-point array, got dtype int64"),
    "sdpa-int-value": (lambda: sdpa(Q, K, V.astype(np.int32), enable_gqa=True), TypeError,
                       r"value .*int32"),
    "sdpa-int8-mask": (lambda: sdpa(Q, K, V, np.ones((5, 6), np.int8), enable_gqa=True),
                       TypeError, r"attn_mask must be bool .* or float .*got dtype int8"),
    "sdpa-alibi-shape": (lambda: sdpa(Q, K, V, enable_gqa=True, alibi_slopes=np.ones(2)),
                         ValueError, r"alibi_slopes .*\(4,\).*\(2,\)"),
    "sdpa-sinks-shape": (lambda: sdpa(Q, K, V, enable_gqa=True, sinks=np.ones((4, 1))),
                         ValueError, r"sinks .*\(4, 1\)"),
    "sdpa-softcap": (lambda: sdpa(Q, K, V, enable_gqa=True, softcap=0.0), ValueError,
                     r"softcap must be > 0"),
    "sdpa-window": (lambda: sdpa(Q, K, V, enable_gqa=True, window=(1,)), ValueError,
                    r"window must be a \(left, right\) pair"),
    "sdpa-dropout-p": (lambda: sdpa(Q, K, V, dropout_p=1.0, enable_gqa=True), ValueError,
                       r"dropout_p must be in \[0, 1\)"),
    "sdpa-dropout-no-mask": (lambda: sdpa(Q, K, V, dropout_p=0.1, enable_gqa=True), ValueError,
                             r"dropout_p > 0 needs an explicit dropout_mask"),
    "sdpa-dropout-mask-shape": (
        lambda: sdpa(Q, K, V, dropout_p=0.1, enable_gqa=True, dropout_mask=np.ones((5, 5))),
        ValueError, r"dropout_mask of shape \(5, 5\)"),
    "sdpa-alignment": (lambda: sdpa(Q, K, V, is_causal=True, enable_gqa=True,
                                    causal_alignment="bottom"), ValueError,
                       r"causal_alignment must be one of .*'bottom'"),
    "sdpa-fully-masked": (lambda: sdpa(Q, K, V, enable_gqa=True, fully_masked="drop"),
                          ValueError, r"fully_masked must be one of .*'drop'"),
    "backward-grad-shape": (lambda: sdpa_backward(Q, K, V, np.zeros((2, 4, 5, 4)),
                                                  enable_gqa=True), ValueError,
                            r"grad_out .*\(2, 4, 5, 3\).*\(2, 4, 5, 4\)"),
    "backward-int-grad": (lambda: sdpa_backward(Q, K, V, np.zeros((2, 4, 5, 3), int),
                                                enable_gqa=True), TypeError, r"grad_out .*int"),
    "backward-gqa": (lambda: sdpa_backward(GQA_3_OF_2, K, V, np.zeros((2, 3, 5, 3)),
                                           enable_gqa=True), ValueError,
                     r"enable_gqa.*query heads \(3\)"),
    "blocked-head-dim": (lambda: blocked_sdpa(Q, K[..., :7], V, enable_gqa=True), ValueError,
                         r"query and key .*\(2, 2, 6, 7\)"),
    "blocked-gqa": (lambda: blocked_sdpa(GQA_3_OF_2, K, V, enable_gqa=True), ValueError,
                    r"enable_gqa.*query heads \(3\).*key shape \(2, 2, 6, 8\)"),
    "blocked-mask-nan": (lambda: blocked_sdpa(Q, K, V, np.full((5, 6), np.nan),
                                              enable_gqa=True), ValueError,
                         r"attn_mask \(shape \(5, 6\)\) contains NaN"),
    "blocked-int8-mask": (lambda: blocked_sdpa(Q, K, V, np.ones((5, 6), np.int8),
                                               enable_gqa=True), TypeError,
                          r"attn_mask .*int8"),
    "blocked-mask-broadcast": (lambda: blocked_sdpa(Q, K, V, np.ones((3, 6), bool),
                                                    enable_gqa=True), ValueError,
                               r"attn_mask of shape \(3, 6\)"),
    "blocked-int-query": (lambda: blocked_sdpa(Q.astype(int), K, V, enable_gqa=True),
                          TypeError, r"query .*int"),
    "blocked-block-size": (lambda: blocked_sdpa(Q, K, V, enable_gqa=True, block_size=0),
                           ValueError, r"block_size must be a positive int, got 0"),
    "blocked-fully-masked": (lambda: blocked_sdpa(Q, K, V, enable_gqa=True,
                                                  fully_masked="drop"), ValueError,
                             r"fully_masked must be one of"),
    "decode-caches-disagree": (
        lambda: decode_step(Q[..., :1, :], K[..., :3, :], V[..., :2, :], K[..., 3:4, :],
                            V[..., 3:4, :]),
        ValueError, r"key_cache and value_cache .*\(2, 2, 3, 8\).*\(2, 2, 2, 3\)"),
    "decode-cache-head-dim": (
        lambda: decode_step(Q[..., :1, :], K[..., :3, :7], V[..., :3, :], K[..., 3:4, :],
                            V[..., 3:4, :]),
        ValueError, r"key_cache and new_key .*\(2, 2, 3, 7\).*\(2, 2, 1, 8\)"),
    "decode-query-length": (
        lambda: decode_step(Q[..., :2, :], K[..., :3, :], V[..., :3, :], K[..., 3:4, :],
                            V[..., 3:4, :]),
        ValueError, r"query and new_key .*length.*\(2, 4, 2, 8\)"),
    "decode-int-cache": (
        lambda: decode_step(Q[..., :1, :], K[..., :3, :].astype(np.int32), V[..., :3, :],
                            K[..., 3:4, :], V[..., 3:4, :]),
        TypeError, r"key_cache must be a floating-point array, got dtype int32"),
    "mha-heads-divide-embed": (lambda: _mha(num_heads=3), ValueError,
                               r"num_heads=3.*query \(5, 2, 8\)"),
    "mha-in-proj-shape": (lambda: _mha(in_proj_weight=W_IN[:16]), ValueError,
                          r"in_proj_weight must have shape \(24, 8\).*\(16, 8\)"),
    "mha-out-bias-shape": (lambda: _mha(out_proj_bias=np.zeros(3)), ValueError,
                           r"out_proj_bias must have shape \(8,\).*\(3,\)"),
    "mha-padding-shape": (lambda: _mha(key_padding_mask=np.zeros((5, 2), bool)), ValueError,
                          r"key_padding_mask must have shape \(2, 5\), got \(5, 2\)"),
    "mha-mask-shape": (lambda: _mha(attn_mask=np.zeros((5, 4))), ValueError,
                       r"attn_mask must have shape \(5, 5\) or \(4, 5, 5\), got \(5, 4\)"),
    "mha-int8-mask": (lambda: _mha(attn_mask=np.zeros((5, 5), np.int8)), TypeError,
                      r"attn_mask must be bool .*got dtype int8"),
    "mha-int-padding": (lambda: _mha(key_padding_mask=np.zeros((2, 5), int)), TypeError,
                        r"key_padding_mask must be bool .*got dtype int64"),
    "mha-nan-mask": (lambda: _mha(attn_mask=np.full((5, 5), np.nan)), ValueError,
                     r"attn_mask .*contains NaN"),
    "mha-int-query": (lambda: _mha(query=X.astype(int)), TypeError, r"query .*int64"),
    "ffn-w1-layout": (lambda: _ffn(w1=_rng.standard_normal((16, 8))), ValueError,
                      r"w1 \(D, F\).*w1 \(16, 8\)"),
    "ffn-b1-shape": (lambda: _ffn(b1=np.zeros(8)), ValueError, r"b1 must have shape \(16,\)"),
    "ffn-activation": (lambda: _ffn(activation="swish"), ValueError,
                       r"activation must be one of .*'swish'"),
    "ffn-int-x": (lambda: _ffn(x=np.ones((3, 8), int)), TypeError, r"x must be .*int64"),
    "encoder-int-src": (lambda: encoder_layer(np.ones((5, 8), int), EncoderLayerWeights(
        *[None] * 12), 2), TypeError, r"src must be .*int64"),
}


@pytest.mark.parametrize("case_id", list(CASES))
def test_bad_input_message_names_the_argument(case_id: str) -> None:
    call, error, pattern = CASES[case_id]
    with pytest.raises(error, match=pattern):
        call()
