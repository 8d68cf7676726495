"""One step of incremental (KV-cached) decoding.

    K' = concat(key_cache, new_key)      V' = concat(value_cache, new_value)   (on L)
    out = sdpa(query, K', V', is_causal=True, causal_alignment="bottom_right",
               enable_gqa = Hq ≠ Hk)

so new query i (of Ln) sits at position Lc + i and sees the whole cache and
the new keys up to and including its own. Running a sequence through
``decode_step`` in chunks reproduces full causal attention over it.

Shapes: query (..., Hq, Ln, E); key_cache (..., Hk, Lc, E), value_cache
(..., Hk, Lc, Ev) with Lc ≥ 0; new_key (..., Hk, Ln, E), new_value
(..., Hk, Ln, Ev). Returns (out (..., Hq, Ln, Ev), key_cache', value_cache'),
the caches as new arrays (the inputs are not modified).

Source: the KV cache of autoregressive Transformer decoding (e.g. Pope et al.
2022, "Efficiently Scaling Transformer Inference"); bottom-right causal
alignment as in flash-attn ≥ 2.1 and ``torch.nn.attention.bias.causal_lower_right``.
"""

from __future__ import annotations

import numpy as np

from reference._common import check_float_array
from reference.scaled_dot_product import sdpa


def _append(cache: np.ndarray, new: np.ndarray, names: tuple[str, str]) -> np.ndarray:
    """concat on the L axis after checking that every other dim agrees."""
    if cache.ndim != new.ndim or cache.shape[:-2] + cache.shape[-1:] != (
        new.shape[:-2] + new.shape[-1:]
    ):
        raise ValueError(
            f"{names[0]} and {names[1]} must agree on every dim but L (-2): "
            f"{names[0]} shape {cache.shape}, {names[1]} shape {new.shape}"
        )
    return np.concatenate([cache, new], axis=-2)


def decode_step(
    query: np.ndarray,
    key_cache: np.ndarray,
    value_cache: np.ndarray,
    new_key: np.ndarray,
    new_value: np.ndarray,
    scale: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Append the new keys/values to the caches and attend with the new queries."""
    arrays = {"query": query, "key_cache": key_cache, "value_cache": value_cache,
              "new_key": new_key, "new_value": new_value}
    arrays = {name: check_float_array(name, x, 3) for name, x in arrays.items()}
    if arrays["key_cache"].shape[:-1] != arrays["value_cache"].shape[:-1]:
        raise ValueError(
            f"key_cache and value_cache must agree on (..., Hk, Lc): key_cache shape "
            f"{key_cache.shape}, value_cache shape {value_cache.shape}"
        )
    keys = _append(arrays["key_cache"], arrays["new_key"], ("key_cache", "new_key"))
    values = _append(arrays["value_cache"], arrays["new_value"], ("value_cache", "new_value"))
    query = arrays["query"]
    if query.shape[-2] != new_key.shape[-2]:
        raise ValueError(
            f"query and new_key must have the same length Ln: "
            f"query shape {query.shape}, new_key shape {new_key.shape}"
        )
    out = sdpa(query, keys, values, is_causal=True, scale=scale,
               enable_gqa=query.shape[-3] != keys.shape[-3], causal_alignment="bottom_right")
    return out, keys, values
