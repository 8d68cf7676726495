"""The mutant zoo: wrong attention implementations the kit must catch, one bug each.

Every mutant is ``_base`` (a correct NumPy attention) or ``_base_ops`` with one
change; its docstring names the bug and where such a bug was seen. Registries:

* ``MUTANTS``: name -> adapter (a callable with torch's SDPA signature, or an
  op-object exposing one op of docs/ops.md), declared with ``conformance.adapter``;
* ``BUGS``: name -> one-line bug description (the docstring's first line);
* ``CATCHES``: name -> the checks expected to catch it;
* ``TRIGGERS``: name -> an input on which the bug shows (see ``triggers``);
* ``PENDING``: name -> adapter, mutants grown from real bug reports that today's
  ``ci`` cases do not catch yet, and ``PENDING_AXES``: name -> the axis value whose
  case would catch it. When the case space sends that value they move to ``MUTANTS``.
"""

from . import op_bugs as o
from . import real_bugs as r
from . import real_kernel_bugs as k
from . import sdpa_bugs as s
from . import softmax_bugs as m
from . import torch_bugs as t
from . import varlen_bugs as vb
from ._base import bug_of
from .real_triggers import REAL_TRIGGERS
from .triggers import TRIGGERS, Trigger

TRIGGERS = {**TRIGGERS, **REAL_TRIGGERS}

MUTANTS = {
    # SDPA, softmax stage
    "softmax_whole_matrix": m.softmax_whole_matrix,
    "softmax_no_max_subtraction": m.softmax_no_max_subtraction,
    "masked_fill_tiny_negative": m.masked_fill_tiny_negative,
    "mask_fill_minus_1e4": m.mask_fill_minus_1e4,
    "additive_minus_1e9": m.additive_minus_1e9,
    "fully_masked_nan": m.fully_masked_nan,
    "fully_masked_uniform": m.fully_masked_uniform,
    "mask_after_softmax": m.mask_after_softmax,
    "lowp_running_sum": m.lowp_running_sum,
    "global_max_subtraction": m.global_max_subtraction,
    "online_no_rescale": m.online_no_rescale,
    "online_finite_initial_max": m.online_finite_initial_max,
    "sink_not_shifted": m.sink_not_shifted,
    # SDPA, other stages, arguments and result
    "gqa_tile": s.gqa_tile,
    "window_left_off_by_one": s.window_left_off_by_one,
    "alibi_signed_distance": s.alibi_signed_distance,
    "softcap_after_mask": s.softcap_after_mask,
    "dropout_when_p_zero": s.dropout_when_p_zero,
    "dropout_scale_in_eval": s.dropout_scale_in_eval,
    "output_always_float64": s.output_always_float64,
    "no_sqrt_scaling": s.no_sqrt_scaling,
    "explicit_scale_ignored": s.explicit_scale_ignored,
    "scale_from_value_dim": s.scale_from_value_dim,
    "scale_from_model_width": s.scale_from_model_width,
    "scale_from_key_length": s.scale_from_key_length,
    "decode_path_unscaled": s.decode_path_unscaled,
    "bool_mask_inverted": s.bool_mask_inverted,
    "float_mask_as_bool": s.float_mask_as_bool,
    "float_mask_scaled": s.float_mask_scaled,
    "finfo_min_masks_summed": s.finfo_min_masks_summed,
    "causal_bottom_right": s.causal_bottom_right,
    "causal_alignment_ignored": s.causal_alignment_ignored,
    "mask_dropped_with_causal": s.mask_dropped_with_causal,
    "padding_assumed_right": s.padding_assumed_right,
    "query_scaled_in_place": s.query_scaled_in_place,
    "nondeterministic_last_bit": s.nondeterministic_last_bit,
    # torch autograd
    "softmax_detached": t.softmax_detached,
    # other ops
    "backward_no_rowsum": o.backward_no_rowsum,
    "backward_gqa_first_head": o.backward_gqa_first_head,
    "mha_in_proj_bias_ignored": o.mha_in_proj_bias_ignored,
    "mha_sdpa_mask_rule": o.mha_sdpa_mask_rule,
    "mha_weights_summed": o.mha_weights_summed,
    "mha_split_no_transpose": o.mha_split_no_transpose,
    "rope_convention_swapped": o.rope_convention_swapped,
    "rope_base_ignored": o.rope_base_ignored,
    "rope_positions_ignored": o.rope_positions_ignored,
    "alibi_slopes_non_pow2": o.alibi_slopes_non_pow2,
    "relative_skew_off_by_one": o.relative_skew_off_by_one,
    "additive_mask_ignored": o.additive_mask_ignored,
    "decode_top_left": o.decode_top_left,
    "decode_offset_minus_one": o.decode_offset_minus_one,
    # grown from real bug reports (docs/real-bugs.md): masks, causality, windows, GQA, ALiBi
    "causal_dropped_without_mask": r.causal_dropped_without_mask,
    "keys_cut_to_query_length": r.keys_cut_to_query_length,
    "causal_rows_from_mask_shape": r.causal_rows_from_mask_shape,
    "float_bias_nonzero_masked": r.float_bias_nonzero_masked,
    "bool_mask_added_as_bias": r.bool_mask_added_as_bias,
    "float_mask_read_as_keep_flags": r.float_mask_read_as_keep_flags,
    "hidden_scores_zeroed": r.hidden_scores_zeroed,
    "padding_broadcast_over_queries": r.padding_broadcast_over_queries,
    "window_dropped_without_mask": r.window_dropped_without_mask,
    "window_left_one_wide": r.window_left_one_wide,
    "window_right_exclusive": r.window_right_exclusive,
    "gqa_repeat_on_sequence_axis": r.gqa_repeat_on_sequence_axis,
    "gqa_group_rounded_to_pow2": r.gqa_group_rounded_to_pow2,
    "alibi_exponent_from_zero": r.alibi_exponent_from_zero,
    # grown from real bug reports: tiles, layout, head dims, dropout
    "padded_tile_keys_counted": k.padded_tile_keys_counted,
    "qkv_strides_ignored": k.qkv_strides_ignored,
    "value_strides_ignored": k.value_strides_ignored,
    "value_rows_at_key_dim": k.value_rows_at_key_dim,
    "dropout_rescaled_by_p": k.dropout_rescaled_by_p,
    # grown from real bug reports, caught once the case space sent their axis values
    "padding_from_first_sample": r.padding_from_first_sample,
    "mask_3d_heads_as_batch": r.mask_3d_heads_as_batch,
    "mask_read_to_512": r.mask_read_to_512,
    "window_dropped_in_decode": r.window_dropped_in_decode,
    "window_decode_one_short": r.window_decode_one_short,
    "first_tile_hidden_nan": k.first_tile_hidden_nan,
    "tail_key_stale_at_32n_plus_1": k.tail_key_stale_at_32n_plus_1,
    "scores_first_64_dims": k.scores_first_64_dims,
    "qk_product_overflows_fp16": k.qk_product_overflows_fp16,
}
MUTANTS.update(vb.MUTANTS)  # sdpa_varlen and paged_attention (issue 19)

# Grown from real bug reports and not caught by the ci cases when they were written: each
# waits here for the axis value in PENDING_AXES, and moves to MUTANTS (with its CATCHES row,
# as measured) once a case sends it. All of them are caught now (the case space from
# conformance/ops/sdpa_axes.py, and the window-decode and bool-mask-long-keys scenarios).
PENDING: dict = {}
PENDING_AXES: dict[str, str] = {}

BUGS = {name: bug_of(adapter) for name, adapter in MUTANTS.items()}

# The checks that catch each mutant, the first (in the check table's order) first, as
# measured by `attnconf matrix` (profile ci, default seed).
CATCHES = {
    "softmax_whole_matrix": (
        "causality", "shift_invariance", "convex_hull", "decoding", "golden", "numeric",
    ),
    "softmax_no_max_subtraction": ("numeric",),
    "masked_fill_tiny_negative": (
        "conventions", "masked_keys", "causality", "convex_hull", "padding", "decoding",
        "fully_masked", "golden", "numeric",
    ),
    "mask_fill_minus_1e4": ("masked_keys", "numeric",),
    "additive_minus_1e9": ("fully_masked", "golden", "numeric",),
    "fully_masked_nan": ("conventions", "output_contract", "fully_masked", "golden", "numeric",),
    "fully_masked_uniform": ("conventions", "fully_masked", "golden", "numeric",),
    "mask_after_softmax": (
        "masked_keys", "causality", "convex_hull", "padding", "decoding", "golden", "numeric",
    ),
    "lowp_running_sum": ("numeric",),
    "global_max_subtraction": ("numeric",),
    "online_no_rescale": ("permutation", "golden", "numeric",),
    "online_finite_initial_max": ("numeric",),
    "sink_not_shifted": ("golden", "numeric",),
    "gqa_tile": ("gqa_repeat", "golden", "numeric",),
    "window_left_off_by_one": ("golden", "numeric",),
    "alibi_signed_distance": ("golden", "numeric",),
    "softcap_after_mask": ("golden", "numeric",),
    "dropout_when_p_zero": (
        "masked_keys", "causality", "shift_invariance", "permutation", "convex_hull",
        "independence", "padding", "decoding", "gqa_repeat", "scale_law", "determinism", "golden",
        "numeric",
    ),
    "dropout_scale_in_eval": ("convex_hull", "golden", "numeric",),
    "output_always_float64": ("output_contract", "golden", "numeric",),
    "no_sqrt_scaling": ("scale_law", "golden", "numeric",),
    "explicit_scale_ignored": ("scale_law", "golden", "numeric",),
    "scale_from_value_dim": ("scale_law", "golden", "numeric",),
    "scale_from_model_width": ("independence", "scale_law", "golden", "numeric",),
    "scale_from_key_length": ("padding", "decoding", "scale_law", "golden", "numeric",),
    "decode_path_unscaled": ("decoding", "scale_law", "numeric",),
    "bool_mask_inverted": ("masked_keys", "padding", "fully_masked", "golden", "numeric",),
    "float_mask_as_bool": ("shift_invariance", "golden", "numeric",),
    "float_mask_scaled": ("golden", "numeric",),
    "finfo_min_masks_summed": ("golden", "numeric",),
    "causal_bottom_right": ("conventions", "causality", "golden", "numeric",),
    "causal_alignment_ignored": ("golden", "numeric",),
    "mask_dropped_with_causal": ("golden", "numeric",),
    "padding_assumed_right": ("masked_keys", "permutation", "convex_hull", "golden", "numeric",),
    "query_scaled_in_place": ("no_mutation",),
    "nondeterministic_last_bit": ("determinism",),
    "softmax_detached": ("gradients", "dropout",),
    "backward_no_rowsum": ("numeric",),
    "backward_gqa_first_head": ("numeric",),
    "mha_in_proj_bias_ignored": ("numeric",),
    "mha_sdpa_mask_rule": ("numeric",),
    "mha_weights_summed": ("numeric",),
    "mha_split_no_transpose": ("numeric",),
    "rope_convention_swapped": ("numeric",),
    "rope_base_ignored": ("numeric",),
    "rope_positions_ignored": ("numeric",),
    "alibi_slopes_non_pow2": ("numeric",),
    "relative_skew_off_by_one": ("numeric",),
    "additive_mask_ignored": ("numeric",),
    "decode_top_left": ("numeric",),
    "decode_offset_minus_one": ("numeric",),
    "causal_dropped_without_mask": ("causality", "decoding", "golden", "numeric",),
    "keys_cut_to_query_length": (
        "conventions", "masked_keys", "shift_invariance", "permutation", "convex_hull", "padding",
        "decoding", "fully_masked", "determinism", "no_mutation", "golden", "numeric",
    ),
    "causal_rows_from_mask_shape": ("numeric",),
    "float_bias_nonzero_masked": ("shift_invariance", "golden", "numeric",),
    "bool_mask_added_as_bias": (
        "masked_keys", "convex_hull", "padding", "fully_masked", "golden", "numeric",
    ),
    "float_mask_read_as_keep_flags": ("shift_invariance", "golden", "numeric",),
    "hidden_scores_zeroed": (
        "conventions", "masked_keys", "causality", "convex_hull", "padding", "decoding",
        "fully_masked", "golden", "numeric",
    ),
    "padding_broadcast_over_queries": ("permutation", "convex_hull", "golden", "numeric",),
    "window_dropped_without_mask": ("golden", "numeric",),
    "window_left_one_wide": ("golden", "numeric",),
    "window_right_exclusive": ("golden", "numeric",),
    "gqa_repeat_on_sequence_axis": ("gqa_repeat", "golden", "numeric",),
    "gqa_group_rounded_to_pow2": ("gqa_repeat", "golden", "numeric",),
    "alibi_exponent_from_zero": ("numeric",),
    "padded_tile_keys_counted": (
        "shift_invariance", "convex_hull", "padding", "decoding", "golden", "numeric",
    ),
    "qkv_strides_ignored": ("permutation", "numeric",),
    "value_strides_ignored": ("permutation", "numeric",),
    "value_rows_at_key_dim": (
        "masked_keys", "permutation", "padding", "scale_law", "golden", "numeric",
    ),
    "dropout_rescaled_by_p": ("dropout",),
    "padding_from_first_sample": ("numeric",),
    "mask_3d_heads_as_batch": ("numeric",),
    "mask_read_to_512": ("numeric",),
    "window_dropped_in_decode": ("numeric",),
    "window_decode_one_short": ("numeric",),
    "first_tile_hidden_nan": ("numeric",),
    "tail_key_stale_at_32n_plus_1": (
        "masked_keys", "permutation", "padding", "decoding", "numeric",
    ),
    "scores_first_64_dims": ("scale_law", "numeric",),
    "qk_product_overflows_fp16": ("numeric",),
}
CATCHES.update(vb.CATCHES)
TRIGGERS.update(vb.TRIGGERS)

__all__ = ["BUGS", "CATCHES", "MUTANTS", "PENDING", "PENDING_AXES", "TRIGGERS", "Trigger"]
