"""Hypothesis strategies for attention problems.

Read like ``hypothesis.extra.numpy``: essentials positional, options
keyword-only, a value or a strategy accepted, bounded defaults, arguments
checked eagerly. A problem is drawn as shapes + a seed; its arrays come from
``np.random.default_rng(seed)``, so shrinking gives small shapes quickly and a
failing example is reproduced from four numbers.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.cases import AttentionShapes
from conformance.vocabulary import MASK_KINDS

# the masks a drawn problem may carry: none, or a vocabulary mask kind that is an array
# (causal and window are flags, not arrays)
MASK_CHOICES = ("none", *(kind for kind in MASK_KINDS if kind in ("bool", "float")))


class AttentionProblem(NamedTuple):
    shapes: AttentionShapes
    dtype: str
    seed: int
    mask: str

    def describe(self) -> str:
        return f"[{self.shapes.label}-{self.dtype}] mask={self.mask} seed={self.seed}"


def _as_strategy(value):
    return value if isinstance(value, st.SearchStrategy) else st.just(value)


def _check_int(name: str, value, low: int, fix: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int ≥ {low}, got {value!r}: {fix}")


def _check_flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}")


@functools.cache
def _value_dims(dim: int) -> st.SearchStrategy[int]:
    return st.sampled_from((dim, max(1, dim // 2) + 1))


@st.composite
def _shapes(draw, batches, heads, groups, lengths, dims, gqa, equal_lengths):
    # the strategies are built once, by attention_shapes, not at every draw: the same
    # draws (so the same examples) at a fraction of the cost
    batch = tuple(draw(batches))
    heads_kv = draw(heads)
    heads_q = heads_kv * (draw(groups) if gqa else 1)
    len_q = draw(lengths)
    len_k = len_q if equal_lengths else draw(lengths)
    dim = draw(dims)
    dim_v = draw(_value_dims(dim))
    return AttentionShapes(batch, heads_q, heads_kv, len_q, len_k, dim, dim_v)


def attention_shapes(
    *,
    max_batch_dims: int = 2,
    max_heads: int = 3,
    max_len: int = 9,
    max_dim: int = 16,
    min_len: int = 1,
    gqa: bool = False,
    equal_lengths: bool = False,
) -> st.SearchStrategy[AttentionShapes]:
    """Shapes of one attention call, every size drawn from 1 (or ``min_len``) to its bound.

    ``max_batch_dims`` leading batch dims of size 1–2 each; ``max_heads`` key/value heads,
    and as many query heads, or 2–3 times as many with ``gqa``; Lq and Lk in
    ``[min_len, max_len]`` (equal with ``equal_lengths``); E ≤ ``max_dim`` and Ev either E or
    max(1, E // 2) + 1 (so Ev ≠ E is drawn even for E = 1). The defaults keep every array
    tiny: at most 2·2·3·9·16 elements (with ``gqa``, queries 2·2·9·9·16).
    """
    _check_int("max_batch_dims", max_batch_dims, 0, "use 0 for no batch dims")
    _check_int("max_heads", max_heads, 1, "an attention call has at least one head")
    _check_int("min_len", min_len, 1, "sequences have at least one position")
    _check_int("max_len", max_len, min_len,
               f"max_len bounds min_len ({min_len}) from above; raise max_len or lower min_len")
    _check_int("max_dim", max_dim, 1, "the head dimension E is at least 1")
    _check_flag("gqa", gqa)
    _check_flag("equal_lengths", equal_lengths)
    return _shapes(st.lists(st.integers(1, 2), max_size=max_batch_dims),
                   st.integers(1, max_heads), st.integers(2, 3), st.integers(min_len, max_len),
                   st.integers(1, max_dim), gqa, equal_lengths)


def attention_problems(
    shapes: AttentionShapes | st.SearchStrategy[AttentionShapes] | None = None,
    *,
    dtype: str | st.SearchStrategy[str] = "float64",
    mask: str | st.SearchStrategy[str] = "none",
) -> st.SearchStrategy[AttentionProblem]:
    """Problems (shapes, dtype, seed, mask kind); ``materialize`` makes the arrays."""
    if not (shapes is None or isinstance(shapes, (AttentionShapes, st.SearchStrategy))):
        raise ValueError(f"shapes must be an AttentionShapes, a strategy of them (e.g. "
                         f"attention_shapes(max_len=5)) or None, got {shapes!r}")
    if not isinstance(dtype, st.SearchStrategy) and dtype not in DTYPE_BY_NAME:
        raise ValueError(f"dtype must be one of {list(DTYPE_BY_NAME)} or a strategy of them, "
                         f"got {dtype!r}")
    if not isinstance(mask, st.SearchStrategy) and mask not in MASK_CHOICES:
        raise ValueError(f"mask must be one of {list(MASK_CHOICES)} or a strategy of them, "
                         f"got {mask!r}")
    shapes_st = attention_shapes() if shapes is None else _as_strategy(shapes)
    return st.builds(AttentionProblem, shapes_st, _as_strategy(dtype),
                     st.integers(0, 2**31 - 1), _as_strategy(mask))


def materialize(problem: AttentionProblem) -> dict[str, np.ndarray]:
    """query, key, value and (per ``problem.mask``) a full-shape attn_mask with no empty row."""
    sh, rng = problem.shapes, np.random.default_rng(problem.seed)
    dtype = DTYPE_BY_NAME[problem.dtype]
    arrays: dict[str, np.ndarray] = {
        "query": rng.standard_normal((*sh.batch, sh.heads_q, sh.len_q, sh.dim)),
        "key": rng.standard_normal((*sh.batch, sh.heads_kv, sh.len_k, sh.dim)),
        "value": rng.standard_normal((*sh.batch, sh.heads_kv, sh.len_k, sh.dim_v)),
    }
    arrays = {k: v.astype(dtype) for k, v in arrays.items()}
    if problem.mask != "none":
        visible = rng.random((*sh.batch, sh.heads_q, sh.len_q, sh.len_k)) < 0.7
        keep = rng.integers(0, sh.len_k, size=visible.shape[:-1])
        np.put_along_axis(visible, keep[..., None], True, axis=-1)
        arrays["attn_mask"] = visible if problem.mask == "bool" else (
            np.where(visible, 0.0, -np.inf).astype(dtype))
    return arrays
