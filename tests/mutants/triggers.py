"""For each mutant, one small input on which its bug shows: ``TRIGGERS[name]() -> Trigger``.

The sanity test runs the mutant and a correct implementation (tests/correct)
on it and requires a difference: in the output values or dtype, between two
calls, or in the inputs after the call. Every trigger draws from its own seed.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Trigger(NamedTuple):
    op: str
    kwargs: dict


def _qkv(*, batch=(2,), heads=(2, 2), lq=5, lk=7, e=8, ev=8, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    hq, hk = heads
    return dict(
        query=rng.standard_normal((*batch, hq, lq, e)).astype(dtype),
        key=rng.standard_normal((*batch, hk, lk, e)).astype(dtype),
        value=rng.standard_normal((*batch, hk, lk, ev)).astype(dtype),
    )


def _sdpa(**kwargs) -> Trigger:
    shape = {k: kwargs.pop(k) for k in ("batch", "heads", "lq", "lk", "e", "ev", "dtype", "seed")
             if k in kwargs}
    return Trigger("sdpa", {**_qkv(**shape), **kwargs})


def _random_bool(lq=5, lk=7, seed=1):
    mask = np.random.default_rng(seed).random((lq, lk)) > 0.4
    mask[:, 0] = True  # no fully masked row: only the bug under test shows
    return mask


def _one_empty_row(lq=5, lk=7):
    mask = _random_bool(lq, lk)
    mask[2] = False
    return mask


def _huge_masked_key():
    t = _sdpa()
    t.kwargs["query"][...] = 1.0
    t.kwargs["key"][..., 0, :] = 5000.0  # score 5000 · √8 ≈ 1.4e4 > 1e4, hidden below
    return Trigger("sdpa", {**t.kwargs, "attn_mask": np.arange(7) > 0})


def _long_uniform_fp16():
    t = _sdpa(batch=(), heads=(1, 1), lq=2, lk=4096, dtype=np.float16)
    t.kwargs["query"][...] = 0  # every exp is 1: the float16 running sum stalls at 2048
    t.kwargs["value"][...] = 1 + t.kwargs["value"] / 8
    return t


def _one_batch_huge():
    t = _sdpa()
    t.kwargs["query"][0] *= 1000.0
    return t


def _late_max():
    t = _sdpa(batch=(), heads=(1, 1), lq=2, lk=7)
    t.kwargs["key"][..., 6, :] = 4.0 * t.kwargs["query"][..., 0, :]  # the max in the 2nd block
    return t


def _finfo_min_case():
    mask = np.ones((4, 4), dtype=bool)
    mask[:, 0] = False  # row 0 sees only key 0 under the causal rule: fully masked
    return _sdpa(lq=4, lk=4, attn_mask=mask, is_causal=True)


def _left_padding():
    mask = np.ones((5, 7), dtype=bool)
    mask[:, :2] = False
    return _sdpa(attn_mask=mask)


def _float_0_inf():
    return np.where(_random_bool(), 0.0, -np.inf)


def _mha(seed=3, **options) -> Trigger:
    rng = np.random.default_rng(seed)
    length, n, embed = 5, 3, 8
    args = dict(
        query=rng.standard_normal((length, n, embed)), key=rng.standard_normal((length, n, embed)),
        value=rng.standard_normal((length, n, embed)), num_heads=2,
        in_proj_weight=rng.standard_normal((3 * embed, embed)) / 3,
        in_proj_bias=rng.standard_normal(3 * embed),
        out_proj_weight=rng.standard_normal((embed, embed)) / 3,
        out_proj_bias=rng.standard_normal(embed),
    )
    return Trigger("multi_head_attention", {**args, **options})


def _rope(**options) -> Trigger:
    x = np.random.default_rng(4).standard_normal((2, 3, 8))
    return Trigger("rotary_embedding", {"x": x, **options})


def _backward(**shape) -> Trigger:
    t = _sdpa(**shape)
    lead = t.kwargs["query"].shape[:-1]
    grad = np.random.default_rng(5).standard_normal((*lead, t.kwargs["value"].shape[-1]))
    return Trigger("sdpa_backward", {**t.kwargs, "grad_out": grad})


def _additive() -> Trigger:
    rng = np.random.default_rng(6)
    mask = _random_bool(4, 6)
    return Trigger("additive_attention", dict(
        query=rng.standard_normal((2, 4, 5)), keys=rng.standard_normal((2, 6, 3)),
        values=rng.standard_normal((2, 6, 7)), w_query=rng.standard_normal((5, 4)),
        w_key=rng.standard_normal((3, 4)), w_score=rng.standard_normal(4), mask=mask))


def _decode(cache: int, new: int) -> Trigger:
    rng = np.random.default_rng(7)
    return Trigger("decode_step", dict(
        query=rng.standard_normal((2, 4, new, 8)), key_cache=rng.standard_normal((2, 2, cache, 8)),
        value_cache=rng.standard_normal((2, 2, cache, 8)),
        new_key=rng.standard_normal((2, 2, new, 8)), new_value=rng.standard_normal((2, 2, new, 8))))


def _relative() -> Trigger:
    rng = np.random.default_rng(8)
    q, k, v = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    return Trigger("relative_attention", dict(query=q, key=k, value=v,
                                              rel_embeddings=rng.standard_normal((5, 4))))


def _gradients() -> Trigger:
    """Forward inputs and an upstream gradient: only the backward pass shows the bug."""
    rng = np.random.default_rng(9)
    return Trigger("sdpa:grad", {**_qkv(seed=9), "grad_out": rng.standard_normal((2, 2, 5, 8))})


TRIGGERS = {
    # softmax stage
    "softmax_whole_matrix": lambda: _sdpa(),
    "softmax_no_max_subtraction": lambda: _sdpa(query=_qkv()["query"] * 400.0),
    "masked_fill_tiny_negative": lambda: _sdpa(attn_mask=_random_bool()),
    "mask_fill_minus_1e4": _huge_masked_key,
    "additive_minus_1e9": lambda: _sdpa(attn_mask=_one_empty_row()),
    "fully_masked_nan": lambda: _sdpa(attn_mask=_one_empty_row()),
    "fully_masked_uniform": lambda: _sdpa(attn_mask=_one_empty_row()),
    "mask_after_softmax": lambda: _sdpa(attn_mask=_random_bool()),
    "lowp_running_sum": _long_uniform_fp16,
    "global_max_subtraction": _one_batch_huge,
    "online_no_rescale": _late_max,
    "online_finite_initial_max": lambda: _sdpa(attn_mask=np.full((5, 7), -1e5)),
    "sink_not_shifted": lambda: _sdpa(query=_qkv()["query"] * 3, sinks=np.array([0.5, -1.0])),
    # other stages, arguments, result
    "gqa_tile": lambda: _sdpa(heads=(4, 2), enable_gqa=True),
    "window_left_off_by_one": lambda: _sdpa(lq=6, lk=6, window=(2, 0)),
    "alibi_signed_distance": lambda: _sdpa(alibi_slopes=np.array([0.5, 0.25])),
    "softcap_after_mask": lambda: _sdpa(attn_mask=_random_bool(), softcap=1.0),
    "dropout_when_p_zero": lambda: _sdpa(),
    "dropout_scale_in_eval": lambda: _sdpa(),
    "output_always_float64": lambda: _sdpa(dtype=np.float32),
    "no_sqrt_scaling": lambda: _sdpa(e=16),
    "explicit_scale_ignored": lambda: _sdpa(scale=0.9),
    "scale_from_value_dim": lambda: _sdpa(e=16, ev=4),
    "scale_from_model_width": lambda: _sdpa(),
    "scale_from_key_length": lambda: _sdpa(e=8, lk=7),
    "decode_path_unscaled": lambda: _sdpa(lq=1),
    "bool_mask_inverted": lambda: _sdpa(attn_mask=_random_bool()),
    "float_mask_as_bool": lambda: _sdpa(attn_mask=_float_0_inf()),
    "float_mask_scaled": lambda: _sdpa(attn_mask=np.random.default_rng(2).normal(size=(5, 7))),
    "finfo_min_masks_summed": _finfo_min_case,
    "causal_bottom_right": lambda: _sdpa(lq=3, lk=6, is_causal=True),
    "causal_alignment_ignored": lambda: _sdpa(lq=3, lk=6, is_causal=True,
                                              causal_alignment="bottom_right"),
    "mask_dropped_with_causal": lambda: _sdpa(lq=7, attn_mask=_random_bool(7, 7), is_causal=True),
    "padding_assumed_right": _left_padding,
    "query_scaled_in_place": lambda: _sdpa(),
    "nondeterministic_last_bit": lambda: _sdpa(),
    # torch autograd
    "softmax_detached": _gradients,
    # other ops
    "backward_no_rowsum": lambda: _backward(),
    "backward_gqa_first_head": lambda: _backward(heads=(4, 2), enable_gqa=True),
    "mha_in_proj_bias_ignored": lambda: _mha(),
    "mha_sdpa_mask_rule": lambda: _mha(key_padding_mask=np.arange(5) >= np.array([[5], [4], [3]])),
    "mha_weights_summed": lambda: _mha(),
    "mha_split_no_transpose": lambda: _mha(),
    "rope_convention_swapped": lambda: _rope(convention="half"),
    "rope_base_ignored": lambda: _rope(base=500000.0),
    "rope_positions_ignored": lambda: _rope(positions=np.array([7.0, 8.0, 9.0])),
    "alibi_slopes_non_pow2": lambda: Trigger("alibi_slopes", {"num_heads": 12}),
    "relative_skew_off_by_one": _relative,
    "additive_mask_ignored": _additive,
    "decode_top_left": lambda: _decode(cache=5, new=2),
    "decode_offset_minus_one": lambda: _decode(cache=3, new=1),
}
