"""The kit's vocabulary, each list once: ops, features, dtypes, conventions, mask kinds.

Everything else (the op table, declarations, case generation, the CLI's lists) reads
these; tests check that the op table, ``reference.VARIANTS`` and the dtype table agree
with them. Plain data: this module imports nothing from the kit.
"""

from __future__ import annotations

# the op names an adapter may expose (DESIGN.md, Adapters); one module each in ops/
OPS = (
    "sdpa",
    "sdpa_backward",
    "multi_head_attention",
    "rotary_embedding",
    "alibi_slopes",
    "relative_attention",
    "additive_attention",
    "decode_step",
    "sdpa_varlen",
    "paged_attention",
)

# what an adapter may declare it supports (case axes that need it are skipped otherwise)
FEATURES = (
    "bool_mask",
    "float_mask",
    "causal",
    "bottom_right",
    "gqa",
    "scale",
    "window",
    "softcap",
    "alibi",
    "sinks",
    "dropout",
    "lse",
    "mask_with_causal",
)

# the dtypes cases are generated in
DTYPES = ("float64", "float32", "float16", "bfloat16")

# points where correct libraries disagree: name -> allowed values (DESIGN.md, Conventions)
CONVENTIONS = {
    "causal_alignment": ("top_left", "bottom_right"),
    "fully_masked": ("zeros", "nan", "uniform", "any"),
    "masked_nonfinite": ("ignored", "propagates"),
}

# torch's behaviour: what a plain callable (torch's signature) is held to.
DEFAULT_CONVENTIONS = {
    "causal_alignment": "top_left",
    "fully_masked": "zeros",
    "masked_nonfinite": "propagates",
}

# What can hide every key of a row, the keys of a ``fully_masked`` mapping (the rule that
# attributes a row to one of them: conformance/judging/empty_rows.py). A kind left out is zeros.
MASK_KINDS = ("bool", "float", "causal", "window")
MASK_KIND_MEANINGS = ("'bool' (a bool attn_mask hid the row), 'float' (-inf in a float "
                      "attn_mask), 'causal' (is_causal alone: bottom_right with Lq > Lk), "
                      "'window' (the window alone)")
