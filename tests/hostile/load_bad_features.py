"""Declares the window and softcap features, but its sdpa accepts neither parameter."""

import conformance
from hostile._honest import honest_sdpa

sdpa = conformance.adapter(lambda query, key, value, attn_mask=None, is_causal=False: (
    honest_sdpa(query, key, value, attn_mask, is_causal=is_causal)),
    name="bad-features", features={"bool_mask", "causal", "window", "softcap"})
