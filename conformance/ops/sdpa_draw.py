"""Inputs of a generated ``sdpa`` case (``conformance.ops.sdpa_space``): values drawn from
the case's value distribution, its mask built from form, pattern and fill, and q/k/v laid
out in memory as the case's layout says. Everything comes from ``default_rng(case.seed)``.
"""

from __future__ import annotations

import math
from typing import Any

import ml_dtypes
import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.cases import AttentionShapes, Case

# harness-only options of generated cases: they shape the inputs, the adapter never sees them
DRAW_OPTIONS = ("values", "layout", "mask_form", "mask_pattern", "mask_fill", "mask_dtype")
SELF_LARGE_NORM2 = 1.5 * 65504  # mean |q|^2 of the key = query case: above float16's max


def draw_qkv(values: str, sh: AttentionShapes, rng: np.random.Generator
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """q, k, v in float64 from one of the value distributions of
    ``conformance.ops.sdpa_axes``."""
    qs = (*sh.batch, sh.heads_q, sh.len_q, sh.dim)
    ks = (*sh.batch, sh.heads_kv, sh.len_k, sh.dim)
    vs = (*sh.batch, sh.heads_kv, sh.len_k, sh.dim_v)
    if values == "heavy":  # Student t with 3 dof, clipped so 16-bit logits stay finite
        q, k, v = (np.clip(rng.standard_t(3, s), -20, 20) for s in (qs, ks, vs))
    elif values == "ties":
        q, k = rng.integers(-1, 2, qs).astype(float), rng.integers(-1, 2, ks).astype(float)
        v = rng.standard_normal(vs)
    else:
        q, k, v = rng.standard_normal(qs), rng.standard_normal(ks), rng.standard_normal(vs)
    if values == "positive":
        v = v + 3.0
    elif values == "peaked":
        q, k = 6.0 * q, 6.0 * k
    elif values == "selflarge":  # |q|^2 ≈ 1.5 x 65504: q.k overflows float16 before scaling
        q = q * math.sqrt(SELF_LARGE_NORM2 / sh.dim)
        k = q.copy()
    return q, k, v


def _dims(form: str, sh: AttentionShapes) -> tuple[int, ...]:
    size = {"h": (sh.heads_q,), "q": (sh.len_q,), "k": (sh.len_k,), "1": (1,), "b": sh.batch}
    return tuple(n for token in form.split("-") for n in size[token])


def _padding(shape: tuple[int, ...], lk: int, rng) -> np.ndarray:
    """Sample b sees its first len_b keys; the lengths differ between samples where they can."""
    lead = shape[:-1]
    count = math.prod(lead)
    lengths = (rng.permutation(np.arange(1, lk + 1))[:count] if count <= lk
               else rng.integers(1, lk + 1, count))
    return np.arange(lk) < lengths.reshape(*lead, 1)


def _tiles(lq: int, lk: int, rng) -> np.ndarray:
    """Block-sparse (Lq, Lk): whole key tiles hidden per query tile, the first key tile for
    even query tiles and the last for odd ones, one tile kept visible in each."""
    tile = 64 if lk > 64 else max(1, lk // 4)
    nt = -(-lk // tile)
    visible = np.ones((lq, lk), bool)
    for r, start in enumerate(range(0, lq, tile)):
        hidden = rng.random(nt) < 0.5
        hidden[0 if r % 2 == 0 else nt - 1] = True
        if hidden.all():
            hidden[-1 if r % 2 == 0 else 0] = False
        keys = np.repeat(hidden, tile)[:lk]
        visible[start:start + tile, keys] = False
    return visible


def _pattern(pattern: str, shape: tuple[int, ...], sh: AttentionShapes, rng) -> np.ndarray:
    lq, lk = sh.len_q, sh.len_k
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    if pattern == "padding":
        return _padding(shape, lk, rng)
    if pattern == "tril_top_left":
        return np.broadcast_to(j <= i, shape)
    if pattern == "tril_bottom_right":
        return np.broadcast_to(j <= i + lk - lq, shape)
    if pattern == "docs":
        docs = min(3, lq, lk)
        return np.broadcast_to(i * docs // lq == j * docs // lk, shape)
    if pattern == "tiles":
        rows = _tiles(shape[-2] if len(shape) > 1 else 1, lk, rng)
        return np.broadcast_to(rows if len(shape) > 1 else rows[0], shape)
    visible = rng.random(shape) < 0.7
    keep = rng.integers(0, lk, size=shape[:-1])
    np.put_along_axis(visible, keep[..., None], True, axis=-1)
    if pattern == "empty" and len(shape) > 1:
        visible[..., 1 % shape[-2], :] = False
        visible[..., -1, :] = False
    return visible


def _fill(fill: Any, dtype) -> float:
    if fill == "finfo_min":
        return float(ml_dtypes.finfo(dtype).min)
    return float(fill)


def _shapes(case: Case) -> AttentionShapes:
    if case.shapes is None:
        raise ValueError(f"a generated sdpa case needs shapes: {case.id}")
    return case.shapes


def draw_mask(case: Case, rng, dtype) -> np.ndarray:
    sh = _shapes(case)
    shape = _dims(case.option("mask_form"), sh)
    visible = np.array(_pattern(case.option("mask_pattern"), shape, sh, rng), dtype=np.bool_)
    if case.option("mask_dtype") == "bool":
        return visible
    bias = rng.standard_normal(shape)
    return np.where(visible, bias, _fill(case.option("mask_fill"), dtype)).astype(dtype)


def _blhd(x: np.ndarray) -> np.ndarray:
    """The same values as a (…, H, L, D) view of a (…, L, H, D) array."""
    return np.swapaxes(np.ascontiguousarray(np.swapaxes(x, -3, -2)), -3, -2)


def _negative(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x[..., ::-1, :])[..., ::-1, :]


def _offset(x: np.ndarray) -> np.ndarray:
    buffer = np.zeros(x.size + 1, x.dtype)
    buffer[1:] = x.ravel()
    return buffer[1:].reshape(x.shape)


def _last_stride(x: np.ndarray) -> np.ndarray:
    buffer = np.zeros((*x.shape[:-1], 2 * x.shape[-1]), x.dtype)
    buffer[..., ::2] = x
    return buffer[..., ::2]


def _stride_zero(x: np.ndarray, batch_dims: int) -> np.ndarray:
    """Broadcast the first batch entry (or, without 2+ samples, the first head) with
    stride 0: the values change, all entries along that axis are equal."""
    if math.prod(x.shape[:batch_dims]) >= 2:
        return np.broadcast_to(x[(0,) * batch_dims][(None,) * batch_dims], x.shape)
    return np.broadcast_to(x[..., :1, :, :], x.shape)


def lay_out(layout: str, q, k, v, batch_dims: int):
    """q, k, v as the views the layout names (values equal, except stride-0 ones)."""
    if layout == "blhd":
        return _blhd(q), _blhd(k), _blhd(v)
    if layout == "vstrided":
        return q, k, _blhd(v)
    if layout == "negstride":
        return _negative(q), _negative(k), _negative(v)
    if layout == "stridezero":
        return q, _stride_zero(k, batch_dims), _stride_zero(v, batch_dims)
    if layout == "offset":
        return _offset(q), _offset(k), _offset(v)
    if layout == "laststride":
        return _last_stride(q), _last_stride(k), _last_stride(v)
    return q, k, v


def make_inputs(case: Case) -> dict[str, Any]:
    """query/key/value (and attn_mask) of a generated case, from its own seed."""
    rng = np.random.default_rng(case.seed)
    sh, dtype = _shapes(case), DTYPE_BY_NAME[case.dtype]
    q, k, v = (x.astype(dtype) for x in draw_qkv(case.option("values"), sh, rng))
    q, k, v = lay_out(case.option("layout"), q, k, v, len(sh.batch))
    inputs = {"query": q, "key": k, "value": v}
    if case.option("mask") == "axes":
        inputs["attn_mask"] = draw_mask(case, rng, dtype)
    return inputs
