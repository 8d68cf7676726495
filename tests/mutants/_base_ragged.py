"""Correct NumPy ``sdpa_varlen`` and ``paged_attention`` (docs/ops.md), the base of their mutants.

Each takes its replaceable pieces as keywords (``segments=``, ``diagonal=``,
``pages_read=``, ``keys_read=``, ``steps=``, ``lse_heads=``, ``slots_read=``) so a
mutant changes exactly one of them. Every sequence goes through the mutants' own dense
``_base.attend`` with an explicit visibility mask; written independently of
``reference``.
"""

from __future__ import annotations

import math

import numpy as np

from ._base import STEPS, alibi_bias, as_f64, attend

# One dense call holds at most this many scores (float64: 128 MiB per copy). A mutant that
# merges sequences (the whole 16k-token pack as one) would otherwise need tens of GiB in the
# in-process detection matrix; above it, the case is skipped as unsupported.
DENSE_LIMIT = 1 << 24

# --- the pieces a mutant replaces --------------------------------------------


def segments(cu_q, cu_k):
    """[(query rows, key rows)] of each sequence: consecutive offsets."""
    return [(slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1]))
            for b in range(len(cu_q) - 1)]


def diagonal(lq: int, lk: int, alignment: str, all_lq, all_lk) -> int:
    """Causal offset of one sequence: key j visible to query i iff j ≤ i + offset."""
    return lk - lq if alignment == "bottom_right" else 0


def pages_read(table_row, seq_len: int, page: int, b: int, table) -> np.ndarray:
    """The pages sequence b reads, in position order: the first ceil(len / page) entries."""
    return np.asarray(table_row[: -(-seq_len // page)], dtype=np.int64)


def keys_read(seq_len: int, page: int) -> int:
    """How many gathered slots are keys: exactly seq_len."""
    return seq_len


def slots_read(seq_len: int, page: int) -> int | None:
    """How many gathered slots enter the computation (masked past the keys): None, the keys."""
    return None


def lse_heads(lse: np.ndarray, group: int) -> np.ndarray:
    """The lse as computed, one row per query head."""
    return lse


# --- one sequence ----------------------------------------------------------------


def visible_keys(lq: int, lk: int, offset: int, is_causal: bool, window) -> np.ndarray:
    i, j = np.arange(lq)[:, None] + offset, np.arange(lk)[None, :]
    visible = np.ones((lq, lk), bool)
    if is_causal:
        visible &= j <= i
    if window is not None:
        left, right = window
        if left is not None:
            visible &= j >= i - left
        if right is not None:
            visible &= j <= i + right
    return visible


def sequence(q, k, v, *, offset, is_causal=False, scale=None, enable_gqa=False, window=None,
             softcap=None, alibi_slopes=None, steps=STEPS, heads_of_lse=lse_heads,
             keys=None):
    """(L, H, D) in; out (Lq, Hq, Ev) and lse (Hq, Lq) out, float64; no key → 0, −inf.
    With ``keys``, only the first ``keys`` rows of k and v are keys: the rest is masked."""
    lq, hq = q.shape[0], q.shape[1]
    if lq * k.shape[0] * hq > DENSE_LIMIT:
        raise NotImplementedError(f"this dense mutant would hold {lq}x{k.shape[0]}x{hq} scores "
                                  f"(over {DENSE_LIMIT}); it is checked on smaller cases")
    if k.shape[0] == 0:
        return np.zeros((lq, hq, v.shape[2])), np.full((hq, lq), -np.inf)
    visible = visible_keys(lq, k.shape[0], offset, is_causal, window)
    lk = k.shape[0] if keys is None else keys
    visible[:, lk:] = False
    qh, kh, vh = (np.swapaxes(as_f64(x), 0, 1) for x in (q, k, v))
    alignment = "bottom_right" if offset == lk - lq and offset else "top_left"
    out = attend(qh, kh, vh, visible, scale=scale, enable_gqa=enable_gqa, steps=steps,
                 causal_alignment=alignment, softcap=softcap, alibi_slopes=alibi_slopes)
    group = hq // kh.shape[0]
    kx = steps.expand_kv(kh, hq) if group > 1 else kh
    logits = (qh @ np.swapaxes(kx, -1, -2)) * (1 / math.sqrt(q.shape[2]) if scale is None
                                               else scale)
    if softcap is not None:
        logits = softcap * np.tanh(logits / softcap)
    if alibi_slopes is not None:
        logits = logits + alibi_bias(alibi_slopes, lq, k.shape[0],
                                     k.shape[0] - lq if alignment == "bottom_right" else 0)
    hidden = np.where(visible, logits, -np.inf)
    top = hidden.max(axis=-1, initial=-np.inf)
    safe = np.where(np.isfinite(top), top, 0.0)
    with np.errstate(divide="ignore"):
        lse = safe + np.log(np.exp(hidden - safe[..., None]).sum(axis=-1))
    return np.swapaxes(out, 0, 1), heads_of_lse(lse, group)


def _finish(out, lse, query, return_lse):
    out = out.astype(np.asarray(query).dtype)
    lse = lse.astype(np.float64 if np.asarray(query).dtype == np.float64 else np.float32)
    return (out, lse) if return_lse else out


# --- the two ops --------------------------------------------------------------------


def sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False,
                causal_alignment="top_left", scale=None, window=None, softcap=None,
                alibi_slopes=None, enable_gqa=False, return_lse=False,
                split=segments, offset_of=diagonal, steps=STEPS, heads_of_lse=lse_heads):
    """Each packed sequence attended alone."""
    cu_q, cu_k = np.asarray(cu_seqlens_q).tolist(), np.asarray(cu_seqlens_k).tolist()
    lens_q, lens_k = np.diff(cu_q), np.diff(cu_k)
    out = np.zeros((query.shape[0], query.shape[1], value.shape[2]))
    lse = np.full((query.shape[1], query.shape[0]), -np.inf)
    for rows, keys in split(cu_q, cu_k):
        lq, lk = rows.stop - rows.start, keys.stop - keys.start
        if lq == 0:
            continue
        out[rows], lse[:, rows] = sequence(
            query[rows], key[keys], value[keys],
            offset=offset_of(lq, lk, causal_alignment, lens_q, lens_k), is_causal=is_causal,
            scale=scale, enable_gqa=enable_gqa, window=window, softcap=softcap,
            alibi_slopes=alibi_slopes, steps=steps, heads_of_lse=heads_of_lse)
    return _finish(out, lse, query, return_lse)


def paged_attention(query, key_pages, value_pages, block_table, seq_lens, *, is_causal=False,
                    causal_alignment="bottom_right", scale=None, window=None, softcap=None,
                    alibi_slopes=None, enable_gqa=False, page_layout="NHD", return_lse=False,
                    pages=pages_read, count=keys_read, steps=STEPS, heads_of_lse=lse_heads,
                    use_window=True, slots=slots_read):
    """Each sequence over the keys its block table names, gathered in position order."""
    if page_layout == "HND":
        key_pages, value_pages = np.swapaxes(key_pages, 1, 2), np.swapaxes(value_pages, 1, 2)
    page = key_pages.shape[1]
    batch, lq, hq = query.shape[:3]
    out = np.zeros((batch, lq, hq, value_pages.shape[-1]))
    lse = np.full((batch, hq, lq), -np.inf)
    for b, n in enumerate(np.asarray(seq_lens).tolist()):
        used = pages(block_table[b], n, page, b, block_table)
        n_keys = count(n, page)
        n_slots = slots(n, page)
        gathered = n_keys if n_slots is None else n_slots
        keys = key_pages[used].reshape(-1, *key_pages.shape[2:])[:gathered]
        values = value_pages[used].reshape(-1, *value_pages.shape[2:])[:gathered]
        offset = n_keys - lq if causal_alignment == "bottom_right" else 0
        out[b], lse[b] = sequence(
            query[b], keys, values, offset=offset, is_causal=is_causal, scale=scale,
            enable_gqa=enable_gqa, window=window if use_window else None, softcap=softcap,
            alibi_slopes=alibi_slopes, steps=steps, heads_of_lse=heads_of_lse,
            keys=None if n_slots is None else n_keys)
    return _finish(out, lse, query, return_lse)
