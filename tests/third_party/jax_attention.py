"""``jax.nn.dot_product_attention`` (XLA implementation, CPU), wrapped as a user would.

``jax_attention`` has torch's SDPA signature plus the kit's ``window`` keyword;
the wrapper only adapts layouts and names:

* JAX's layout is (B, T, N, H) (batch, length, heads, head dim), the kit's
  (..., H, L, D): the leading batch dims (zero or more, query's and key's
  broadcast together) are flattened into one B and the last two axes swapped,
  and back for the output;
* ``attn_mask``: bool → JAX's ``mask`` (True = may attend), float → JAX's
  ``bias`` (added after scaling; -inf hides a key). JAX wants a 4-D
  (B, N, T, S) mask: a mask's batch dims are broadcast to the query's and
  flattened, a mask of rank ≤ 3 is left to JAX (it prepends axes of 1);
* ``is_causal`` → ``is_causal`` (JAX's causal mask is ``tril(T, S)``, i.e.
  top-left aligned); ``scale`` → ``scale`` (default 1/sqrt(E) in both);
* GQA is native (N a multiple of K; query head h reads key head h // (N/K),
  the kit's repeat-interleave order); JAX accepts Hq ≠ Hk without a flag,
  the wrapper still refuses it without ``enable_gqa`` as torch does;
* ``window=(left, right)`` → ``local_window_size``: JAX keeps key j for query i
  iff ``i - left <= j <= i + right`` (``_get_window_mask``), the kit's rule at
  top-left alignment; a ``None`` side (unbounded) is passed as max(Lq, Lk),
  which no distance reaches.

Unsupported (``NotImplementedError``, reported as skipped):

* float64: JAX without ``jax_enable_x64`` computes it in float32 and returns
  float32; enabling x64 is a process-wide switch a wrapper must not flip;
* ``dropout_p > 0``: the function has no dropout;
* a value head dim Ev different from E: JAX requires value's shape to equal
  key's (``ValueError: value shape should be ...``);
* a window (or is_causal) with a float mask holding a finite entry below
  -0.7 · float32 max (``finfo(float32).min``, ``finfo(bfloat16).min``): JAX
  hides keys with that finite logit instead of -inf, so such a key, visible by
  the contract (a finite value is a bias), weighs less than the hidden keys and
  a row of them averages the hidden ones (a JAX finding, shown without the kit
  in tests/test_third_party_jax.py);
* bottom-right causal alignment and attn_mask with is_causal are not declared
  (torch's signature never sends them).

float32 runs under ``jax.jit`` (one executable per shape); float16 and
bfloat16 run eagerly, because under jit on CPU they fail to compile (see
``_attention``).

Conventions, as JAX behaves (measured, and probed by every run): a masked
logit is replaced by a large finite negative number (-0.7 · float32 max), so a
row that a bool mask or the window hides entirely is a *uniform* average of
all values; a row whose float bias is -inf everywhere is NaN (softmax of all
-inf). Non-finite values behind a mask propagate (0 · NaN in probs @ value).

Run: ``attnconf run --adapter tests/third_party/jax_attention.py:jax_attention``.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

import conformance

# JAX hides a key by setting its logit to this finite number (``_get_large_negative``: the
# logits are float32 for every supported dtype), not to -inf
JAX_HIDDEN_LOGIT = -0.7 * float(np.finfo(np.float32).max)
FEATURES = ("bool_mask", "float_mask", "causal", "scale", "gqa", "window")
CONVENTIONS = {
    "causal_alignment": "top_left",
    "fully_masked": {"bool": "uniform", "float": "nan", "window": "uniform"},
    "masked_nonfinite": "propagates",
}


def _to_btnh(x: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """(..., H, L, D) → (B, L, H, D), the batch dims broadcast to ``batch`` and flattened."""
    x = np.broadcast_to(x, (*batch, *x.shape[-3:])).reshape(math.prod(batch), *x.shape[-3:])
    return np.swapaxes(x, 1, 2)


def _mask_4d(mask: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """A mask with batch dims gets them broadcast to ``batch`` and flattened into one; a mask
    of rank ≤ 3 has none and is passed unchanged (JAX prepends axes of 1, as torch
    broadcasts)."""
    if mask.ndim <= 3:
        return mask
    tail = mask.shape[-3:]
    return np.broadcast_to(mask, (*batch, *tail)).reshape(math.prod(batch), *tail)


def _window(window, lq: int, lk: int) -> tuple[int, int] | None:
    """The kit's (left, right) as JAX's ints: an unbounded (None) side is max(Lq, Lk)."""
    if window is None:
        return None
    wide = max(lq, lk)
    left, right = window
    return (wide if left is None else int(left), wide if right is None else int(right))


@functools.cache
def _jitted() -> Any:
    """``jax.nn.dot_product_attention`` under ``jax.jit``, as JAX code calls it: one XLA
    executable per input signature (about 2 MiB resident each, measured on CPU, jax 0.10.2)."""
    import jax

    return jax.jit(jax.nn.dot_product_attention,
                   static_argnames=("scale", "is_causal", "local_window_size"))


def _attention(dtype: np.dtype) -> Any:
    """Jitted for float32. float16 and bfloat16 eagerly: under jit on CPU they fail to
    compile (float16: "The precision 'F16_F16_F32' is not supported by dot_general on CPU";
    bfloat16 with Lq = Lk = 1: "Algorithm not supported by the ElementalIrEmitter:
    ALG_DOT_BF16_BF16_F32"), because JAX's fallback to the default precision is a try/except
    around the einsum that only catches the error when the einsum runs eagerly (see
    keras-team/keras-hub#2354, and tests/test_third_party_jax.py). Eager calls compile and
    cache each primitive per shape, about 23 MiB resident per new shape (CPU, jax 0.10.2):
    the worker's peak in ``ci`` is 2.3 GB this way, 3.6 GB with every dtype eager."""
    import jax

    return _jitted() if dtype == np.float32 else jax.nn.dot_product_attention


def _bias_below_hidden(bias: np.ndarray | None) -> bool:
    """A finite bias entry below JAX's hidden logit: the key it is added to would get less
    weight than the keys JAX hides (the kit's contract: a finite bias never hides a key)."""
    if bias is None:
        return False
    values = np.asarray(bias, dtype=np.float64)
    return bool(np.any(np.isfinite(values) & (values < JAX_HIDDEN_LOGIT)))


def _refuse_unsupported(query, key, value, dropout_p: float, enable_gqa: bool) -> None:
    if query.dtype == np.float64:
        raise NotImplementedError("JAX computes float64 in float32 unless jax_enable_x64 is "
                                  "set process-wide")
    if dropout_p:
        raise NotImplementedError("jax.nn.dot_product_attention has no dropout")
    if value.shape[-1] != key.shape[-1]:
        raise NotImplementedError(f"jax.nn.dot_product_attention needs value's head dim "
                                  f"({value.shape[-1]}) equal to key's ({key.shape[-1]})")
    if key.shape[-3] != query.shape[-3] and not enable_gqa:
        raise ValueError(f"query heads {query.shape[-3]} != key heads {key.shape[-3]} "
                         f"without enable_gqa")


@conformance.adapter(name="jax-dot-product-attention", dtypes=("float32", "float16", "bfloat16"),
                     features=FEATURES, conventions=CONVENTIONS)
def jax_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                  enable_gqa=False, *, window=None):
    """torch's SDPA signature over ``jax.nn.dot_product_attention`` (layout (B, T, N, H))."""
    query, key, value = np.asarray(query), np.asarray(key), np.asarray(value)
    _refuse_unsupported(query, key, value, dropout_p, enable_gqa)
    batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3], value.shape[:-3])
    hq, lq, lk = query.shape[-3], query.shape[-2], key.shape[-2]
    mask = bias = None
    if attn_mask is not None:
        attn_mask = _mask_4d(np.asarray(attn_mask), batch)
        if attn_mask.dtype == np.bool_:
            mask = attn_mask
        else:
            bias = attn_mask
    if (is_causal or window is not None) and _bias_below_hidden(bias):
        raise NotImplementedError(
            "JAX hides causal/window keys with a finite logit (-0.7 * float32 max); a bias "
            "below it (e.g. finfo.min) makes its key weigh less than the hidden ones")
    out = _attention(query.dtype)(
        _to_btnh(query, batch), _to_btnh(key, batch), _to_btnh(value, batch), bias=bias,
        mask=mask, scale=None if scale is None else float(scale), is_causal=bool(is_causal),
        local_window_size=_window(window, lq, lk))
    out = np.swapaxes(np.asarray(out), 1, 2)  # (B, Hq, Lq, Ev)
    return out.reshape(*batch, hq, lq, value.shape[-1])


__all__ = ["CONVENTIONS", "FEATURES", "jax_attention"]
