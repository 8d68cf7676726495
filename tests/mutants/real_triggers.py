"""Triggers for the mutants grown from real bug reports (real_bugs, real_kernel_bugs).

Each is the smallest input carrying the axis value of the bug's report (see
docs/real-bugs.md): a decode query, a tile-boundary length, a per-sample key
padding mask, a transposed view, a head dim above 64, 16-bit large activations.
Every trigger draws from its own seed.
"""

from __future__ import annotations

import numpy as np

from .triggers import Trigger, _qkv, _random_bool, _sdpa


def _bias(shape=(5, 7), seed=2):
    return np.random.default_rng(seed).normal(size=shape)


def _key_padding(lengths, lk):
    """(B, 1, 1, Lk) bool: sample b sees its first lengths[b] keys."""
    return (np.arange(lk) < np.asarray(lengths)[:, None])[:, None, None, :]


def _first_tile_hidden():
    mask = np.arange(70) >= 64  # every query sees keys 64..69 only: the first 64-key tile is empty
    return _sdpa(batch=(), heads=(1, 1), lq=2, lk=70, attn_mask=mask)


def _blhd_views(*, value_only=False, seed=10):
    """q, k, v stored (B, L, H, D) and viewed as (B, H, L, D): strides not those of a copy."""
    rng = np.random.default_rng(seed)
    views = {n: np.swapaxes(rng.standard_normal((2, 6, 2, 8)), 1, 2)
             for n in ("query", "key", "value")}
    if value_only:
        views["query"] = np.ascontiguousarray(views["query"])
        views["key"] = np.ascontiguousarray(views["key"])
    return Trigger("sdpa", views)


def _fp16_self_attention():
    """key = query, entries ~ 70: |q|² ≈ 78400 > 65504, so Q·Kᵀ overflows float16 unscaled."""
    qkv = _qkv(batch=(), heads=(1, 1), lq=4, lk=4, e=16, ev=16, dtype=np.float64, seed=11)
    query = (70.0 * qkv["query"]).astype(np.float16)
    return Trigger("sdpa", {"query": query, "key": query.copy(),
                            "value": qkv["value"].astype(np.float16)})


def _dropout_identity_value():
    """value = the identity: the output is the dropped, rescaled weight matrix itself."""
    t = _sdpa(batch=(), heads=(1, 1), lq=6, lk=6, e=8, ev=6, dropout_p=0.2)
    t.kwargs["value"] = np.eye(6)[None]
    return t


def _mask_3d():
    mask = np.random.default_rng(12).random((2, 5, 7)) > 0.4
    mask[..., 0] = True
    return _sdpa(batch=(2,), heads=(2, 2), attn_mask=mask)


REAL_TRIGGERS = {
    # masks, causality, windows, GQA, ALiBi (real_bugs)
    "causal_dropped_without_mask": lambda: _sdpa(lq=5, lk=5, is_causal=True),
    "keys_cut_to_query_length": lambda: _sdpa(lq=1, lk=7),
    "causal_rows_from_mask_shape": lambda: _sdpa(
        lq=5, lk=5, attn_mask=_random_bool(1, 5), is_causal=True),
    "float_bias_nonzero_masked": lambda: _sdpa(attn_mask=_bias()),
    "bool_mask_added_as_bias": lambda: _sdpa(attn_mask=_random_bool()),
    "float_mask_read_as_keep_flags": lambda: _sdpa(attn_mask=_bias()),
    "hidden_scores_zeroed": lambda: _sdpa(attn_mask=_random_bool()),
    "padding_broadcast_over_queries": lambda: _sdpa(
        lq=7, lk=7, attn_mask=_key_padding([5, 3], 7)),
    "padding_from_first_sample": lambda: _sdpa(attn_mask=_key_padding([7, 4], 7)),
    "mask_3d_heads_as_batch": _mask_3d,
    "mask_read_to_512": lambda: _sdpa(
        batch=(), heads=(1, 1), lq=2, lk=520, attn_mask=np.arange(520) < 500),
    "window_dropped_without_mask": lambda: _sdpa(lq=6, lk=6, window=(2, 0)),
    "window_left_one_wide": lambda: _sdpa(lq=6, lk=6, window=(2, 0)),
    "window_right_exclusive": lambda: _sdpa(lq=6, lk=6, window=(1, 2)),
    "window_dropped_in_decode": lambda: _sdpa(lq=1, lk=9, window=(3, 0),
                                              causal_alignment="bottom_right"),
    "window_decode_one_short": lambda: _sdpa(lq=1, lk=9, window=(3, 0),
                                             causal_alignment="bottom_right"),
    "gqa_repeat_on_sequence_axis": lambda: _sdpa(heads=(4, 2), enable_gqa=True),
    "gqa_group_rounded_to_pow2": lambda: _sdpa(heads=(6, 2), enable_gqa=True),
    "alibi_exponent_from_zero": lambda: Trigger("alibi_slopes", {"num_heads": 8}),
    # tiles, layout, head dims, 16-bit, dropout (real_kernel_bugs)
    "padded_tile_keys_counted": lambda: _sdpa(),
    "first_tile_hidden_nan": _first_tile_hidden,
    "tail_key_stale_at_32n_plus_1": lambda: _sdpa(batch=(), heads=(1, 1), lq=2, lk=33),
    "qkv_strides_ignored": _blhd_views,
    "value_strides_ignored": lambda: _blhd_views(value_only=True),
    "scores_first_64_dims": lambda: _sdpa(lq=3, lk=4, e=80, ev=80),
    "value_rows_at_key_dim": lambda: _sdpa(e=16, ev=4),
    "qk_product_overflows_fp16": _fp16_self_attention,
    "dropout_rescaled_by_p": _dropout_identity_value,
}
