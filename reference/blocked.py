"""Blocked scaled dot-product attention with an online softmax (flash-style).

For each block of queries, the keys are visited block by block, keeping per
query row a running max m, running denominator ℓ and unnormalised output A:

    S_b   = logits of the block (``reference._common.attention_logits``; hidden → −inf)
    m'    = max(m, rowmax S_b)
    ℓ     ← e^(m − m') ℓ + rowsum e^(S_b − m')
    A     ← e^(m − m') A + (e^(S_b − m') ⊙ keep / (1 − p)) V_b
    out   = A / ℓ,   lse = m + log ℓ            after the last key block

with m = sink, ℓ = 1 at the start when the head has a sink logit. Only
(query block × key block) scores exist at any time, never Lq × Lk. Every
option of ``reference.sdpa`` means what it means there (masks, alignment,
window, softcap, ALiBi, sinks, GQA, dropout keep-mask, ``fully_masked``,
``return_lse``, ``compute_dtype``) except ``return_weights``: the weights are
the Lq × Lk matrix. In float64 the result equals sdpa's to rounding (≤ 1e-13
relative); with a ``compute_dtype`` the stored tiles are rounded to it and
sums accumulate in float32, as in a flash kernel in that dtype.

One work item is one (batch, head, query block); items run on ``threads``
workers (default ``ATTNCONF_THREADS``, else the usable cores) while BLAS is
held to one thread, so the two kinds of threads do not oversubscribe the cores
(NumPy's ufuncs and BLAS calls release the GIL).

Source: Milakov & Gimelshein 2018 ("Online normalizer calculation for
softmax"); Dao et al. 2022 (FlashAttention, Algorithm 1).
"""

from __future__ import annotations

import contextlib
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from reference._common import (
    aligned_query_positions,
    attention_logits,
    check_attention_shapes,
    check_float_array,
    check_fully_masked,
    check_mask,
    check_sdpa_options,
    rounded,
    work_dtypes,
)

QUERY_BLOCK = 256
KEY_BLOCK = 1024
THREADS_ENV = "ATTNCONF_THREADS"


def default_threads() -> int:
    """Worker threads: ``$ATTNCONF_THREADS`` when set, else the cores this process may use."""
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured:
        if not configured.isdigit() or int(configured) < 1:
            raise ValueError(f"{THREADS_ENV} must be a positive integer, got {configured!r}")
        return int(configured)
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1  # None: the count is unknown


@dataclass(frozen=True)
class _Problem:
    """Everything a work item reads: arrays broadcast to (*batch, H, L, ·), options."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    mask: np.ndarray | None
    keep: np.ndarray | None
    qpos: np.ndarray
    scale: float
    group: int
    store: np.dtype
    acc: np.dtype
    softcap: float | None
    is_causal: bool
    window: tuple[int | None, int | None] | None
    slopes: np.ndarray | None
    sinks: np.ndarray | None
    dropout_scale: float
    fully_masked: str
    key_block: int


def _band_edges(p: _Problem) -> tuple[int | None, int | None]:
    """(left, right) of the band causal and window leave: i' − left ≤ j ≤ i' + right."""
    left, right = (None, None) if p.window is None else p.window
    if p.is_causal:
        right = 0 if right is None else min(right, 0)
    return left, right


def _visible_key_range(p: _Problem, qpos: np.ndarray, lk: int) -> tuple[int, int]:
    """[lo, hi): the only keys the causal/window band lets these (sorted) queries see."""
    left, right = _band_edges(p)
    lo = 0 if left is None or not len(qpos) else max(0, qpos[0] - left)
    hi = lk if right is None or not len(qpos) else min(lk, qpos[-1] + right + 1)
    return int(lo), int(max(lo, hi))


def _band_covers(p: _Problem, qpos: np.ndarray, k0: int, k1: int) -> bool:
    """True when every query of the block sees every key in [k0, k1) by the band."""
    left, right = _band_edges(p)
    inside_left = left is None or k0 >= qpos[-1] - left
    inside_right = right is None or k1 - 1 <= qpos[0] + right
    return inside_left and inside_right


def _attend_rows(p: _Problem, index: tuple, head: int, rows: slice):
    """Online softmax of one query block over its visible key blocks → (A / ℓ, lse, empty)."""
    q = p.q[index][head, rows]
    k, v = p.k[index][head // p.group], p.v[index][head // p.group]
    qpos, lk, acc_dt = p.qpos[rows], k.shape[0], p.acc
    # with no rounding step between them, scale·(q kᵀ) = (scale·q) kᵀ saves a pass per tile
    prescale = p.store == p.acc
    q_used, scale = (q * np.asarray(p.scale, acc_dt), 1.0) if prescale else (q, p.scale)
    slope = None if p.slopes is None else p.slopes[head]
    row_max = np.full(q.shape[0], -np.inf if p.sinks is None else p.sinks[head], dtype=acc_dt)
    denom = np.full(q.shape[0], 0.0 if p.sinks is None else 1.0, dtype=acc_dt)
    out = np.zeros((q.shape[0], v.shape[-1]), dtype=acc_dt)
    lo, hi = _visible_key_range(p, qpos, lk)
    for k0 in range(lo, hi, p.key_block):
        k1 = min(k0 + p.key_block, hi)
        band_all = _band_covers(p, qpos, k0, k1)
        mask = None if p.mask is None else p.mask[index][head, rows, k0:k1]
        scores, visible = attention_logits(
            q_used, k[k0:k1], scale, mask, qpos, np.arange(k0, k1), p.store, acc_dt,
            softcap=p.softcap, is_causal=p.is_causal and not band_all,
            window=None if band_all else p.window, slopes=slope)
        if visible.ndim:
            np.copyto(scores, -np.inf, where=~visible)
        new_max = np.maximum(row_max, scores.max(axis=-1))
        safe_max = np.where(np.isneginf(new_max), 0.0, new_max).astype(acc_dt)
        scores -= safe_max[:, None]
        probs = rounded(np.exp(scores, out=scores), p.store, acc_dt)
        rescale = np.exp(row_max - safe_max)
        denom = rescale * denom + probs.sum(axis=-1, dtype=acc_dt)
        if p.keep is not None:
            probs = rounded(probs * p.keep[index][head, rows, k0:k1] * p.dropout_scale,
                            p.store, acc_dt)
        out *= rescale[:, None]
        out += probs @ v[k0:k1]
        row_max = new_max
    empty = np.isneginf(row_max)
    with np.errstate(divide="ignore"):
        lse = np.where(empty, -np.inf, row_max + np.log(np.where(empty, 1.0, denom)))
    return out / np.where(empty, 1.0, denom)[:, None], lse.astype(acc_dt), empty


def _uniform_rows(p: _Problem, index: tuple, head: int, rows: slice,
                  empty: np.ndarray) -> np.ndarray:
    """Output of the ``empty`` rows under the ``uniform`` policy: weights 1/Lk on every key."""
    v = p.v[index][head // p.group]
    weights = np.full((int(empty.sum()), v.shape[0]), 1.0 / max(v.shape[0], 1), p.acc)
    if p.keep is not None:
        weights = weights * p.keep[index][head, rows][empty] * p.dropout_scale
    return weights @ v


def _work_item(p: _Problem, out: np.ndarray, lse: np.ndarray, index: tuple, head: int,
               rows: slice) -> None:
    """Fill ``out[index][head, rows]`` and ``lse[index][head, rows]`` (disjoint per item)."""
    rows_out, rows_lse, empty = _attend_rows(p, index, head, rows)
    if empty.any() and p.fully_masked == "nan":
        rows_lse[empty] = np.nan
        if p.v.shape[-2]:  # with no key at all, out is an empty sum (0), as P V is in sdpa
            rows_out[empty] = np.nan
    elif empty.any() and p.fully_masked == "uniform":
        rows_out[empty] = _uniform_rows(p, index, head, rows, empty)
    out[index][head, rows] = rows_out
    lse[index][head, rows] = rows_lse


@contextlib.contextmanager
def _blas_single_threaded(workers: int):
    """Hold BLAS to one thread while ``workers`` > 1 Python threads call it."""
    if workers <= 1:
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def blocked_sdpa(
    query: np.ndarray, key: np.ndarray, value: np.ndarray,
    attn_mask: np.ndarray | None = None, is_causal: bool = False, scale: float | None = None,
    enable_gqa: bool = False, *, dropout_p: float = 0.0, causal_alignment: str = "top_left",
    window: tuple[int | None, int | None] | None = None, softcap: float | None = None,
    alibi_slopes: np.ndarray | None = None, sinks: np.ndarray | None = None,
    fully_masked: str = "zeros", dropout_mask: np.ndarray | None = None,
    return_lse: bool = False, compute_dtype=None, block_size: int | None = None,
    key_block: int | None = None, threads: int | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Same numbers as ``reference.sdpa``, in memory bounded by the block sizes.

    ``block_size``: queries per work item (default 256); ``key_block``: keys per
    tile (default ``block_size`` when that is given, else 1024); ``threads``:
    worker threads (default ``default_threads()``). Returns ``out`` or
    ``(out, lse)``; output dtype = query dtype.
    """
    query, key, value = (check_float_array(n, x, 3) for n, x in
                         (("query", query), ("key", key), ("value", value)))
    check_attention_shapes(query, key, value, enable_gqa)
    for name, size in (("block_size", block_size), ("key_block", key_block),
                       ("threads", threads)):
        if size is not None and not (isinstance(size, int) and size >= 1):
            raise ValueError(f"{name} must be a positive int, got {size!r}")
    check_fully_masked(fully_masked)
    (hq, lq, e), (hk, lk) = query.shape[-3:], key.shape[-3:-1]
    batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    scores_shape = (*batch, hq, lq, lk)
    check_sdpa_options(scores_shape, window, softcap, alibi_slopes, sinks, dropout_p,
                       dropout_mask)
    mask = check_mask(attn_mask, scores_shape)
    store, acc = work_dtypes(compute_dtype)
    views = [np.broadcast_to(rounded(x, store, acc), (*batch, *x.shape[-3:]))
             for x in (query, key, value)]
    q, k, v = views
    problem = _Problem(
        q, k, v,
        mask=None if mask is None else np.broadcast_to(mask, scores_shape),
        keep=None if dropout_mask is None else np.broadcast_to(dropout_mask, scores_shape),
        qpos=aligned_query_positions(lq, lk, causal_alignment),
        scale=1.0 / math.sqrt(e) if scale is None else float(scale),
        group=hq // hk, store=store, acc=acc, softcap=softcap, is_causal=is_causal,
        window=window, slopes=None if alibi_slopes is None else np.asarray(alibi_slopes, acc),
        sinks=None if sinks is None else np.asarray(sinks, acc),
        dropout_scale=1.0 / (1.0 - dropout_p), fully_masked=fully_masked,
        key_block=key_block or block_size or KEY_BLOCK)
    out = np.empty((*batch, hq, lq, value.shape[-1]), dtype=acc)
    lse = np.empty((*batch, hq, lq), dtype=acc)
    query_block = block_size or QUERY_BLOCK
    items = [(index, head, slice(r0, r0 + query_block)) for index in np.ndindex(*batch)
             for head in range(hq) for r0 in range(0, lq, query_block)]
    workers = min(threads or default_threads(), len(items))
    with _blas_single_threaded(workers):
        if workers <= 1:
            for item in items:
                _work_item(problem, out, lse, *item)
        else:
            with ThreadPoolExecutor(workers, thread_name_prefix="blocked_sdpa") as pool:
                for done in [pool.submit(_work_item, problem, out, lse, *it) for it in items]:
                    done.result()
    result = out.astype(store).astype(query.dtype)
    return (result, lse) if return_lse else result
