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
    """``x`` rounded to the storage dtype, held in the accumulation dtype.

    No copy is made when ``x`` already is in both: callers that modify the
    result in place pass arrays they own.
    """
    return np.asarray(x).astype(store, copy=False).astype(acc, copy=False)


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
    return band(aligned_query_positions(lq, lk, alignment), np.arange(lk), left, right)


def band(qpos: np.ndarray, kpos: np.ndarray, left: int | None, right: int | None) -> np.ndarray:
    """(len(qpos), len(kpos)) bool: ``qpos_i - left <= kpos_j <= qpos_i + right``."""
    qpos, kpos = qpos[:, None], kpos[None, :]
    visible = np.ones((qpos.shape[0], kpos.shape[1]), dtype=bool)
    if left is not None:
        visible &= kpos >= qpos - left
    if right is not None:
        visible &= kpos <= qpos + right
    return visible


def attention_logits(
    q: np.ndarray, k: np.ndarray, scale: float, mask: np.ndarray | None,
    qpos: np.ndarray, kpos: np.ndarray, store: np.dtype, acc: np.dtype, *,
    softcap: float | None = None, is_causal: bool = False,
    window: tuple[int | None, int | None] | None = None, slopes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(S, visible) for queries at key-axis positions ``qpos`` and keys at ``kpos``.

        S = scale · q kᵀ;  S ← c · tanh(S / c);  S ← S + bias − slope · |i' − j|
        visible = mask ∧ (j ≤ i' when causal) ∧ (i' − left ≤ j ≤ i' + right)

    each stored S rounded to ``store``. ``mask`` is a checked mask already cut
    to these rows and keys; ``slopes`` broadcasts against S. ``visible`` may be
    a 0-d True when nothing hides a key. Used by ``sdpa`` on all of Lq × Lk and
    by ``blocked_sdpa`` on one tile at a time.
    """
    scores = np.matmul(q, np.swapaxes(k, -1, -2))
    if scale != 1.0:
        scores *= scale
    scores = rounded(scores, store, acc)
    if softcap is not None:
        scores = rounded(softcap * np.tanh(scores / softcap), store, acc)
    visible, bias = mask_terms(mask, acc)
    if is_causal:
        visible = visible & band(qpos, kpos, None, 0)
    if window is not None:
        visible = visible & band(qpos, kpos, *window)
    if slopes is not None:
        distance_bias = -slopes * np.abs(qpos[:, None] - kpos[None, :])
        bias = distance_bias if bias is None else bias + distance_bias
    if bias is not None:
        scores = rounded(scores + bias, store, acc)
    return scores, visible


def check_sdpa_options(scores_shape, window, softcap, alibi_slopes, sinks, dropout_p,
                       dropout_mask) -> None:
    """Per-head arrays (Hq,), a (left, right) window, softcap > 0, dropout_p in [0, 1)."""
    heads_q = scores_shape[-3]
    for name, per_head in (("alibi_slopes", alibi_slopes), ("sinks", sinks)):
        if per_head is not None and np.shape(per_head) != (heads_q,):
            raise ValueError(f"{name} must have shape (Hq,) = ({heads_q},), "
                             f"got shape {np.shape(per_head)}")
    if window is not None and len(window) != 2:
        raise ValueError(f"window must be a (left, right) pair, got {window!r}")
    if softcap is not None and not softcap > 0:
        raise ValueError(f"softcap must be > 0, got {softcap}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"dropout_p must be in [0, 1), got {dropout_p}")
    if dropout_p > 0.0 and dropout_mask is None:
        raise ValueError("dropout_p > 0 needs an explicit dropout_mask (keep-mask): "
                         "the reference never draws random numbers")
    if dropout_mask is not None and not broadcasts_to(np.shape(dropout_mask), scores_shape):
        raise ValueError(f"dropout_mask of shape {np.shape(dropout_mask)} does not broadcast "
                         f"to the scores shape {tuple(scores_shape)}")


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


def check_fully_masked(policy: str) -> None:
    """A ValueError naming the policies unless ``policy`` is one of them."""
    if policy not in FULLY_MASKED_POLICIES:
        raise ValueError(f"fully_masked must be one of {FULLY_MASKED_POLICIES}, got {policy!r}")


def mask_terms(mask: np.ndarray | None, acc: np.dtype) -> tuple[np.ndarray, np.ndarray | None]:
    """(visible, bias) of a checked mask: bool → visibility; float → bias, -inf hides.

    bias is None when there is none to add.
    """
    if mask is None:
        return np.ones((), dtype=bool), None
    if mask.dtype == np.bool_:
        return mask, None
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
    check_fully_masked(fully_masked)
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
