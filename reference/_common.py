"""Conventions shared by the attention variants, each stated once, in words.

* Visibility: a key j is *visible* to a query i when every mask says so.
  A boolean mask means True = may attend. A float mask is a bias added to
  the scores after scaling; only ``-inf`` hides a key, any finite value
  (even ``finfo.min``) is a bias.
* Alignment: with ``top_left`` query i sits at position i; with
  ``bottom_right`` (the KV-cache / decoding convention) it sits at
  ``i + Lk - Lq``, so the last query is aligned with the last key.
* Masked-row softmax: softmax in the work dtype, max-subtracted; a row with
  no visible key follows the ``fully_masked`` policy: ``zeros`` (weights 0,
  lse -inf), ``nan`` (weights NaN) or ``uniform`` (weights 1/Lk over all keys,
  which is what a kernel using a large finite fill value produces).
* GQA: query head h reads key/value head ``h // g`` with ``g = Hq / Hk``
  (``repeat_interleave``, never ``tile``).
* Low precision: with a ``compute_dtype`` every stored intermediate (inputs,
  scores, probabilities, output) is rounded to it and sums are accumulated in
  float32, as a straightforward kernel in that dtype does.
"""

from __future__ import annotations

import numpy as np

FULLY_MASKED_POLICIES = ("zeros", "nan", "uniform")
ALIGNMENTS = ("top_left", "bottom_right")


def is_float_dtype(dtype: np.dtype) -> bool:
    """True for float16/32/64 and the ml_dtypes low-precision floats (bfloat16)."""
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.floating):
        return True
    return dtype.kind == "V" and dtype.name in ("bfloat16", "float8_e4m3fn", "float8_e5m2")


def check_float_array(name: str, x: np.ndarray, min_ndim: int = 1) -> np.ndarray:
    """Return ``x`` as an array, raising a TypeError/ValueError naming ``name``."""
    x = np.asarray(x)
    if not is_float_dtype(x.dtype):
        raise TypeError(
            f"{name} must be a floating-point array, got dtype {x.dtype} (shape {x.shape})"
        )
    if x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dims, got shape {x.shape}")
    return x


def broadcastable(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    """True when shapes ``a`` and ``b`` broadcast together (NumPy's rule)."""
    try:
        np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return True


def broadcasts_to(shape: tuple[int, ...], target: tuple[int, ...]) -> bool:
    """True when ``shape`` broadcasts to exactly ``target`` (it adds no dims or sizes)."""
    return broadcastable(shape, target) and np.broadcast_shapes(shape, target) == tuple(target)


def work_dtypes(compute_dtype) -> tuple[np.dtype, np.dtype]:
    """(storage dtype, accumulation dtype): float64 twice, else (dtype, float32)."""
    if compute_dtype is None or np.dtype(compute_dtype) == np.float64:
        return np.dtype(np.float64), np.dtype(np.float64)
    return np.dtype(compute_dtype), np.dtype(np.float32)


def rounded(x: np.ndarray, store: np.dtype, acc: np.dtype) -> np.ndarray:
    """``x`` rounded to the storage dtype, held in the accumulation dtype."""
    return np.asarray(x).astype(store).astype(acc)


def aligned_query_positions(lq: int, lk: int, alignment: str) -> np.ndarray:
    """Position of each query on the key axis: i (top_left) or i + Lk - Lq."""
    if alignment not in ALIGNMENTS:
        raise ValueError(f"causal_alignment must be one of {ALIGNMENTS}, got {alignment!r}")
    offset = 0 if alignment == "top_left" else lk - lq
    return np.arange(lq) + offset


def band_visibility(
    lq: int, lk: int, alignment: str, left: int | None, right: int | None
) -> np.ndarray:
    """(Lq, Lk) bool: key j visible iff ``i' - left <= j <= i' + right``; None = unbounded."""
    qpos = aligned_query_positions(lq, lk, alignment)[:, None]
    kpos = np.arange(lk)[None, :]
    visible = np.ones((lq, lk), dtype=bool)
    if left is not None:
        visible &= kpos >= qpos - left
    if right is not None:
        visible &= kpos <= qpos + right
    return visible


def check_attention_shapes(query, key, value, enable_gqa: bool) -> None:
    """Shapes (..., Hq, Lq, E), (..., Hk, Lk, E), (..., Hk, Lk, Ev); Hq = Hk unless GQA."""
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"query and key must share the last (head) dim E: "
            f"query shape {query.shape}, key shape {key.shape}"
        )
    if key.shape[:-1] != value.shape[:-1]:
        raise ValueError(
            f"key and value must agree on (..., H, L): "
            f"key shape {key.shape}, value shape {value.shape}"
        )
    if enable_gqa and query.shape[-3] % key.shape[-3]:
        raise ValueError(
            f"enable_gqa: query heads ({query.shape[-3]}) must be a multiple of key heads "
            f"({key.shape[-3]}): query shape {query.shape}, key shape {key.shape}"
        )
    if not enable_gqa and query.shape[-3] != key.shape[-3]:
        raise ValueError(
            f"query heads ({query.shape[-3]}) != key heads ({key.shape[-3]}); "
            f"pass enable_gqa=True for grouped-query attention "
            f"(query shape {query.shape}, key shape {key.shape})"
        )
    if not broadcastable(query.shape[:-3], key.shape[:-3]):
        raise ValueError(
            f"batch dims do not broadcast: query shape {query.shape}, key shape {key.shape}"
        )


def check_mask(attn_mask, scores_shape: tuple[int, ...]) -> np.ndarray | None:
    """Validate ``attn_mask``: bool or float, broadcastable to ``scores_shape``, no NaN."""
    if attn_mask is None:
        return None
    mask = np.asarray(attn_mask)
    if not broadcasts_to(mask.shape, scores_shape):
        raise ValueError(
            f"attn_mask of shape {mask.shape} does not broadcast to the scores "
            f"shape (..., Hq, Lq, Lk) = {tuple(scores_shape)}"
        )
    if mask.dtype != np.bool_ and not is_float_dtype(mask.dtype):
        raise TypeError(
            f"attn_mask must be bool (True = may attend) or float (added bias), "
            f"got dtype {mask.dtype} (shape {mask.shape})"
        )
    if mask.dtype != np.bool_ and np.isnan(mask.astype(np.float64)).any():
        raise ValueError(f"attn_mask (shape {mask.shape}) contains NaN; use -inf to hide a key")
    return mask


def mask_terms(mask: np.ndarray | None, acc: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """(visible, bias) of a checked mask: bool → visibility; float → bias, -inf hides."""
    if mask is None:
        return np.ones((), dtype=bool), np.zeros((), dtype=acc)
    if mask.dtype == np.bool_:
        return mask, np.zeros((), dtype=acc)
    bias = mask.astype(acc)
    hidden = np.isneginf(bias)
    return ~hidden, np.where(hidden, 0.0, bias).astype(acc)


def repeat_kv_heads(x: np.ndarray, heads_q: int, name: str) -> np.ndarray:
    """Expand (..., Hk, L, D) to (..., Hq, L, D): head h reads head h // (Hq/Hk)."""
    heads_kv = x.shape[-3]
    if heads_q % heads_kv:
        raise ValueError(
            f"enable_gqa: query heads ({heads_q}) must be a multiple of {name} heads "
            f"({heads_kv}); got {name} shape {x.shape}"
        )
    return np.repeat(x, heads_q // heads_kv, axis=-3)


def masked_softmax(
    scores: np.ndarray,
    visible: np.ndarray,
    fully_masked: str,
    store: np.dtype,
    acc: np.dtype,
    sinks: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Softmax over the last axis restricted to visible keys.

    w_j = exp(s_j - m) / (sum_visible exp(s_k - m) + exp(sink - m)),
    m = max(max_visible s, sink). Returns (weights, lse) with
    lse = m + log(denominator). ``sinks`` broadcasts against ``scores[..., 0]``.
    """
    if fully_masked not in FULLY_MASKED_POLICIES:
        raise ValueError(
            f"fully_masked must be one of {FULLY_MASKED_POLICIES}, got {fully_masked!r}"
        )
    hidden = np.where(visible, scores, -np.inf)
    row_max = hidden.max(axis=-1, initial=-np.inf)  # Lk = 0: every row is empty
    if sinks is not None:
        row_max = np.maximum(row_max, sinks)
    empty = ~np.isfinite(row_max)
    safe_max = np.where(empty, 0.0, row_max)
    exps = rounded(np.exp(hidden - safe_max[..., None]), store, acc)
    denom = exps.sum(axis=-1, dtype=acc)
    if sinks is not None:
        denom = denom + np.exp(sinks - safe_max)
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = rounded(exps / np.where(empty, 1.0, denom)[..., None], store, acc)
        lse = np.where(empty, -np.inf, safe_max + np.log(denom))
    if fully_masked == "nan":
        weights = np.where(empty[..., None], np.nan, weights)
        lse = np.where(empty, np.nan, lse)
    elif fully_masked == "uniform":
        uniform = np.asarray(1.0 / max(scores.shape[-1], 1), dtype=acc)
        weights = np.where(empty[..., None], uniform, weights)
    return weights.astype(acc), lse.astype(acc)
