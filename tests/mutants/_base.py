"""A correct NumPy attention, written once as replaceable steps; every mutant changes one.

``attend`` is scaled dot-product attention with torch's parameters plus the
extensions of DESIGN.md (causal alignment, window, softcap, ALiBi, sinks). It
computes in float64 and returns the query's dtype. It is written
independently of ``reference`` (a mutant must not borrow the expectation it is
checked against). Each stage is a field of :class:`Steps`; a mutant is
``sdpa_variant(<one replaced stage or hook>)``, so everything but its one bug
is this code.

Shapes: query (..., Hq, Lq, E), key (..., Hk, Lk, E), value (..., Hk, Lk, Ev),
logits and weights (..., Hq, Lq, Lk), output (..., Hq, Lq, Ev).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

import conformance

SDPA_FEATURES = ("bool_mask", "float_mask", "causal", "gqa", "scale")

# feature -> the keyword-only parameter an adapter declaring it accepts, and its default
EXTRA_PARAMETERS = {
    "bottom_right": ("causal_alignment", "top_left"),
    "window": ("window", None),
    "softcap": ("softcap", None),
    "alibi": ("alibi_slopes", None),
    "sinks": ("sinks", None),
}


def as_f64(x) -> np.ndarray:
    """A float64 copy of ``x`` (float16/32/64 or ml_dtypes bfloat16)."""
    return np.array(x, dtype=np.float64)


def is_float_mask(mask: np.ndarray) -> bool:
    return mask.dtype.kind == "f" or mask.dtype.name == "bfloat16"


# --- stages -----------------------------------------------------------------


def repeat_interleave_heads(x: np.ndarray, heads_q: int) -> np.ndarray:
    """GQA: query head h reads key/value head h // (Hq / Hk)."""
    return np.repeat(x, heads_q // x.shape[-3], axis=-3)


def scaled_scores(q: np.ndarray, k: np.ndarray, scale: float) -> np.ndarray:
    return (q @ np.swapaxes(k, -1, -2)) * scale


def mask_terms(attn_mask) -> tuple[np.ndarray, np.ndarray]:
    """(visible, bias): bool True = may attend; float = added bias, -inf hides."""
    if attn_mask is None:
        return np.ones((), dtype=bool), np.zeros(())
    mask = np.asarray(attn_mask)
    if mask.dtype == np.bool_:
        return mask, np.zeros(())
    if not is_float_mask(mask):
        raise TypeError(f"attn_mask must be bool or float, got dtype {mask.dtype}")
    bias = as_f64(mask)
    hidden = np.isneginf(bias)
    return ~hidden, np.where(hidden, 0.0, bias)


def band(lq: int, lk: int, offset: int, left: int | None, right: int | None) -> np.ndarray:
    """(Lq, Lk): key j visible to query i iff i' - left <= j <= i' + right, i' = i + offset.

    ``np.tri(lq, lk, d)[i, j]`` is j <= i + d; the left bound is its complement at d = -left - 1.
    """
    visible = np.ones((lq, lk), dtype=bool)
    if right is not None:
        visible &= np.tri(lq, lk, offset + right, dtype=bool)
    if left is not None:
        visible &= ~np.tri(lq, lk, offset - left - 1, dtype=bool)
    return visible


def alibi_bias(slopes, lq: int, lk: int, offset: int) -> np.ndarray:
    """(Hq, Lq, Lk): -slope · |i' - j|."""
    distance = np.abs(np.arange(lq)[:, None] + offset - np.arange(lk)[None, :])
    return -as_f64(slopes)[:, None, None] * distance


def cap_then_bias(scores, bias, visible, softcap):
    """Softcap the scaled scores, then add the biases; hidden keys stay hidden."""
    if softcap is not None:
        scores = softcap * np.tanh(scores / softcap)
    return scores + bias, visible


def row_max(hidden: np.ndarray, sink) -> np.ndarray:
    """Max over visible logits (and the sink), 0 where a row has nothing finite."""
    top = hidden.max(axis=-1, keepdims=True, initial=-np.inf)
    if sink is not None:
        top = np.maximum(top, sink[..., None])
    return np.where(np.isfinite(top), top, 0.0)


def normalize(exps, denom, empty, fully_masked: str) -> np.ndarray:
    """exps / denom; a row with no visible key follows the fully_masked policy."""
    with np.errstate(invalid="ignore", divide="ignore"):
        weights = exps / np.where(denom == 0, 1.0, denom)
    if fully_masked == "nan":
        weights = np.where(empty, np.nan, weights)
    elif fully_masked == "uniform":
        weights = np.where(empty, 1.0 / exps.shape[-1], weights)
    return weights


def masked_softmax(logits, visible, sink, *, fully_masked="zeros", dtype=None):
    """Max-subtracted softmax over visible keys; ``sink`` (Hq, 1) joins the denominator."""
    del dtype  # computed in float64 whatever the input dtype
    hidden = np.where(visible, logits, -np.inf)
    top = row_max(hidden, sink)
    exps = np.exp(hidden - top)
    denom = exps.sum(axis=-1, keepdims=True)
    if sink is not None:
        denom = denom + np.exp(sink[..., None] - top)
    empty = ~visible.any(axis=-1, keepdims=True) & (sink is None)
    return normalize(exps, denom, empty, fully_masked)


def no_dropout(weights: np.ndarray, dropout_p: float) -> np.ndarray:
    if dropout_p > 0.0:
        raise NotImplementedError("dropout_p > 0: this implementation draws no keep-mask")
    return weights


def cast_to(out: np.ndarray, dtype) -> np.ndarray:
    return out.astype(dtype)


@dataclass(frozen=True)
class Steps:
    """The stages of ``attend``, in order; replace one to make a mutant."""

    expand_kv: Callable = repeat_interleave_heads
    scores: Callable = scaled_scores
    band: Callable = band
    alibi: Callable = alibi_bias
    logits: Callable = cap_then_bias
    softmax: Callable = masked_softmax
    dropout: Callable = no_dropout
    cast: Callable = cast_to


STEPS = Steps()


def probabilities(
    query, key, value, attn_mask=None, is_causal=False, scale=None, enable_gqa=False, *,
    causal_alignment="top_left", window=None, softcap=None, alibi_slopes=None, sinks=None,
    fully_masked="zeros", steps=STEPS,
):
    """(weights, q, k, v, scale) in float64, k and v expanded to Hq heads."""
    q, k, v = as_f64(query), as_f64(key), as_f64(value)
    hq, lq, e = q.shape[-3:]
    lk = k.shape[-2]
    if k.shape[-3] != hq:
        if not enable_gqa or hq % k.shape[-3]:
            raise ValueError(f"query heads {hq} vs key heads {k.shape[-3]} (enable_gqa?)")
        k, v = steps.expand_kv(k, hq), steps.expand_kv(v, hq)
    scale = 1.0 / math.sqrt(e) if scale is None else float(scale)
    scores = steps.scores(q, k, scale)
    visible, bias = mask_terms(attn_mask)
    offset = lk - lq if causal_alignment == "bottom_right" else 0
    if is_causal:
        visible = visible & steps.band(lq, lk, offset, None, 0)
    if window is not None:
        visible = visible & steps.band(lq, lk, offset, *window)
    if alibi_slopes is not None:
        bias = bias + steps.alibi(alibi_slopes, lq, lk, offset)
    logits, visible = steps.logits(scores, bias, visible, softcap)
    visible = np.broadcast_to(visible, logits.shape)
    sink = None if sinks is None else as_f64(sinks)[:, None]
    weights = steps.softmax(
        logits, visible, sink, fully_masked=fully_masked, dtype=np.asarray(query).dtype
    )
    return weights, q, k, v, scale


def attend(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
           enable_gqa=False, *, steps=STEPS, **options):
    """softmax(scale · Q Kᵀ + bias, visible keys) V, in float64, returned in query's dtype."""
    weights, _, _, v, _ = probabilities(
        query, key, value, attn_mask, is_causal, scale, enable_gqa, steps=steps, **options
    )
    weights = steps.dropout(weights, dropout_p)
    return steps.cast(weights @ v, np.asarray(query).dtype)


# --- building mutants -------------------------------------------------------


def bug_of(obj) -> str:
    """The one-line bug description: the first line of the adapter's docstring."""
    return inspect.getdoc(obj).splitlines()[0]


def _signature(extras: list[tuple[str, object]]) -> inspect.Signature:
    p = inspect.Parameter
    positional = [p(name, p.POSITIONAL_OR_KEYWORD) for name in ("query", "key", "value")]
    defaults = (("attn_mask", None), ("dropout_p", 0.0), ("is_causal", False),
                ("scale", None), ("enable_gqa", False))
    positional += [p(name, p.POSITIONAL_OR_KEYWORD, default=d) for name, d in defaults]
    return inspect.Signature(positional + [p(n, p.KEYWORD_ONLY, default=d) for n, d in extras])


def sdpa_variant(*, name: str, features=SDPA_FEATURES, before=None, after=None, **steps):
    """An SDPA adapter that is ``attend`` with exactly one change.

    The change is one replaced stage (``softmax=...``), a ``before(call) -> call``
    hook on the arguments, or an ``after(out, call) -> out`` hook on the result;
    its docstring becomes the adapter's. The adapter has torch's eight
    parameters plus the keyword-only ones its declared ``features`` need.
    """
    changes = [f for f in (before, after, *steps.values()) if f is not None]
    if len(changes) != 1:
        raise ValueError(f"a mutant changes exactly one thing, {name} changes {len(changes)}")
    chosen = replace(STEPS, **steps)
    extras = [EXTRA_PARAMETERS[f] for f in features if f in EXTRA_PARAMETERS]
    signature = _signature(extras)

    def sdpa(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        if before is not None:
            call = before(call)
        out = attend(**call, steps=chosen)
        return out if after is None else after(out, call)

    sdpa.__signature__ = signature
    sdpa.__name__ = sdpa.__qualname__ = name
    sdpa.__doc__ = changes[0].__doc__
    sdpa.bug = bug_of(changes[0])
    return conformance.adapter(sdpa, name=f"mutant-{name}", features=features)
