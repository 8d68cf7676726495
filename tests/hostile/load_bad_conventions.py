"""Declares a causal_alignment convention, but its sdpa has no is_causal parameter."""

import conformance
from hostile._honest import honest_sdpa

sdpa = conformance.adapter(lambda query, key, value, attn_mask=None: (
    honest_sdpa(query, key, value, attn_mask)),
    name="bad-conventions", conventions={"causal_alignment": "bottom_right"})
