"""The zoos are what they claim: every mutant's bug is real, every correct implementation agrees.

* each mutant differs from a correct implementation (tests/correct, never
  ``reference``) on its trigger: in values or dtype, between two calls, or in
  the inputs it leaves behind;
* the mutants' unmutated base equals the correct implementations, so a
  mutant is wrong in its one way only;
* every correct implementation agrees with the float64 einsum one on the same
  (rounded) inputs, within a per-dtype tolerance.
"""

from __future__ import annotations

import copy
import re

import ml_dtypes
import numpy as np
import pytest
from correct import CORRECT  # tests/ is on sys.path (tests/conftest.py), as for `attnconf matrix`
from correct.numpy_ops import NUMPY_OPS
from correct.numpy_sdpa import einsum_sdpa
from mutants import (
    BUGS,
    CATCHES,
    MUTANTS,
    PENDING,
    PENDING_AXES,
    TRIGGERS,
    _base,
    _base_ops,
    real_bugs,
    real_kernel_bugs,
)
from mutants._base import bug_of

from conformance.adapters.declare import declaration_of
from conformance.checks import CHECK_NAMES

NUMPY_DTYPES = {"float64": np.float64, "float32": np.float32, "float16": np.float16,
                "bfloat16": ml_dtypes.bfloat16}
# max |candidate - einsum64| <= EPS_FACTOR[dtype] · eps(dtype) · max(1, max |einsum64|)
EPS_FACTOR = {"float64": 64, "float32": 32, "float16": 8, "bfloat16": 8}


def tolerance(dtype, magnitude=1.0) -> float:
    name = np.dtype(dtype).name
    return EPS_FACTOR[name] * float(ml_dtypes.finfo(dtype).eps) * max(1.0, magnitude)


def arrays(result) -> list:
    return list(result) if isinstance(result, tuple) else [result]


def same(a, b) -> bool:
    """Equal dtype and shape, values within the dtype's tolerance (NaN == NaN)."""
    if a is None or b is None:
        return a is None and b is None
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    finite = np.abs(b64[np.isfinite(b64)])
    tol = tolerance(a.dtype, float(finite.max()) if finite.size else 1.0)
    return bool(np.allclose(a64, b64, rtol=0, atol=tol, equal_nan=True))


def observe(fn, kwargs):
    """(first result, second result, inputs after the first call)."""
    first_inputs = copy.deepcopy(kwargs)
    first = arrays(fn(**first_inputs))
    second = arrays(fn(**copy.deepcopy(kwargs)))
    return first, second, first_inputs


def all_same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(same(x, y) for x, y in zip(xs, ys, strict=True))


def identical(xs, ys) -> bool:
    """Bit for bit (determinism)."""
    return len(xs) == len(ys) and all(
        (x is None and y is None) or np.array_equal(x, y, equal_nan=True)
        for x, y in zip(xs, ys, strict=True)
    )


def inputs_unchanged(before: dict, after: dict) -> bool:
    return all(
        not isinstance(v, np.ndarray) or np.array_equal(v, after[k], equal_nan=True)
        for k, v in before.items()
    )


def correct_op(op: str):
    return einsum_sdpa if op == "sdpa" else getattr(NUMPY_OPS, op)


def mutant_op(adapter, op: str):
    return adapter if op == "sdpa" else getattr(adapter, op)


# --- registries -----------------------------------------------------------------


def test_registries_agree():
    assert len(MUTANTS) >= 34
    assert len(CORRECT) >= 16
    assert set(MUTANTS) == set(CATCHES) == set(BUGS)
    assert set(TRIGGERS) == set(MUTANTS) | set(PENDING) and not set(MUTANTS) & set(PENDING)
    assert set(PENDING_AXES) == set(PENDING)
    for name, adapter in MUTANTS.items():
        assert BUGS[name] and "Source:" in adapter.__doc__, name
        assert "|" not in BUGS[name], f"{name}: the bug line is a Markdown table cell"
        assert set(CATCHES[name]) <= set(CHECK_NAMES), (name, CATCHES[name])
        assert declaration_of(adapter).name == f"mutant-{name}"


# --- mutants ----------------------------------------------------------------------


GRADIENT_MUTANTS = sorted(n for n in MUTANTS if TRIGGERS[n]().op == "sdpa:grad")
# triggers with dropout_p > 0: the correct kernels draw no keep-mask, so the check is statistical
DROPOUT_MUTANTS = sorted(n for n in {**MUTANTS, **PENDING}
                         if TRIGGERS[n]().kwargs.get("dropout_p", 0.0) > 0.0)
ALL_ZOO = {**MUTANTS, **PENDING}
REAL_MODULES = (real_bugs, real_kernel_bugs)
# owner/repo#number (a thread) or owner/repo@version (a release's code, no thread exists)
REAL_SOURCE = re.compile(r"Source:\s+[\w.-]+/[\w.-]+(#\d+|@v[\d.]+)")


def _differs_from_correct(name: str) -> None:
    op, kwargs = TRIGGERS[name]()
    good, good_again, good_after = observe(correct_op(op), kwargs)
    assert identical(good, good_again) and inputs_unchanged(kwargs, good_after)
    bad, bad_again, bad_after = observe(mutant_op(ALL_ZOO[name], op), kwargs)
    assert not (
        all_same(bad, good) and identical(bad_again, bad) and inputs_unchanged(kwargs, bad_after)
    ), f"{name} ({bug_of(ALL_ZOO[name])}) behaves correctly on its trigger"


@pytest.mark.parametrize("name", sorted(set(MUTANTS) - {*GRADIENT_MUTANTS, *DROPOUT_MUTANTS}))
def test_mutant_differs_from_correct(name):
    _differs_from_correct(name)


@pytest.mark.parametrize("name", sorted(set(PENDING) - set(DROPOUT_MUTANTS)))
def test_pending_mutant_differs_from_correct(name):
    _differs_from_correct(name)


@pytest.mark.parametrize("name", DROPOUT_MUTANTS)
def test_dropout_mutant_is_not_inverted_dropout(name):
    """value = I, so the output is the dropped weight matrix: a correct kernel's entries are
    each 0 or W / (1 - p), W the p = 0 output (exact up to rounding, whatever the draw)."""
    _, kwargs = TRIGGERS[name]()
    p = kwargs["dropout_p"]
    weights = einsum_sdpa(**{**kwargs, "dropout_p": 0.0})
    out = ALL_ZOO[name](**copy.deepcopy(kwargs))
    kept = np.isclose(out, weights / (1.0 - p), rtol=1e-12, atol=0) & (weights > 0)
    assert not np.all(kept | (out == 0)), f"{name} rescales like inverted dropout"


def test_real_mutants_name_their_source():
    """Every mutant grown from a real report cites it; at least 20 cite an issue or PR."""
    real = {n: a for n, a in ALL_ZOO.items()
            if any(getattr(m, n, None) is a for m in REAL_MODULES)}
    for name, adapter in real.items():
        assert REAL_SOURCE.search(adapter.__doc__), f"{name}: no owner/repo#N source"
    threads = [n for n, a in real.items() if re.search(r"Source:\s+[\w.-]+/[\w.-]+#\d+", a.__doc__)]
    assert len(threads) >= 20, threads


def _autograd(fn, kwargs):
    import torch

    leaves = [torch.from_numpy(kwargs[n].copy()).requires_grad_(True)
              for n in ("query", "key", "value")]
    fn(*leaves).backward(torch.from_numpy(kwargs["grad_out"]))
    return [t.grad.numpy() if t.grad is not None else None for t in leaves]


@pytest.mark.parametrize("name", GRADIENT_MUTANTS)
def test_gradient_mutant_differs_only_in_backward(name):
    torch = pytest.importorskip("torch")
    _, kwargs = TRIGGERS[name]()
    qkv = [torch.from_numpy(kwargs[n]) for n in ("query", "key", "value")]
    right = torch.nn.functional.scaled_dot_product_attention
    assert torch.allclose(MUTANTS[name](*qkv), right(*qkv)), "forward must be right"
    bad, good = _autograd(MUTANTS[name], kwargs), _autograd(right, kwargs)
    assert not all_same(bad, good), f"{name} ({BUGS[name]}) has correct gradients"


def _random_sdpa_inputs(seed, *, lq=6, lk=37, gqa=True):
    rng = np.random.default_rng(seed)
    hk = 2
    hq = 4 if gqa else hk
    kw = {"query": rng.standard_normal((2, hq, lq, 8)), "key": rng.standard_normal((2, hk, lk, 8)),
          "value": rng.standard_normal((2, hk, lk, 5)), "enable_gqa": gqa}
    return rng, kw


@pytest.mark.parametrize("seed", range(6))
def test_mutant_base_equals_correct_sdpa(seed):
    rng, kw = _random_sdpa_inputs(seed)
    options = [
        {"attn_mask": rng.random((6, 37)) > 0.3, "is_causal": True},
        {"attn_mask": np.where(rng.random((4, 6, 37)) > 0.3, rng.normal(size=(4, 6, 37)), -np.inf)},
        {"is_causal": True, "causal_alignment": "bottom_right", "window": (3, 1)},
        {"softcap": 2.0, "alibi_slopes": rng.random(4), "sinks": rng.normal(size=4)},
        {"scale": 0.3, "attn_mask": np.zeros((6, 37), dtype=bool)},
        {"window": (None, 2), "causal_alignment": "bottom_right"},
    ][seed]
    assert same(_base.attend(**kw, **options), einsum_sdpa(**kw, **options))


def _mha_args(rng, batch_first):
    shape = (3, 5, 8) if batch_first else (5, 3, 8)
    args = [rng.standard_normal(shape) for _ in range(3)] + [2]
    args += [rng.standard_normal((24, 8)) / 3, rng.standard_normal(24),
             rng.standard_normal((8, 8)) / 3, rng.standard_normal(8)]
    return args


def test_mutant_base_equals_correct_ops():
    rng = np.random.default_rng(11)
    x = rng.standard_normal((2, 3, 6, 8))
    for conv in ("half", "interleaved"):
        kw = {"positions": np.arange(6) + 4.0, "base": 500.0, "convention": conv}
        assert same(_base_ops.rotary_embedding(x, **kw), NUMPY_OPS.rotary_embedding(x, **kw))
    for heads in (1, 5, 8, 12, 24):
        assert same(_base_ops.alibi_slopes(heads), NUMPY_OPS.alibi_slopes(heads))
    for op in ("relative_skew_off_by_one", "additive_mask_ignored", "backward_gqa_first_head"):
        name, kwargs = TRIGGERS[op]()
        assert all_same(arrays(getattr(_base_ops, name)(**kwargs)),
                        arrays(getattr(NUMPY_OPS, name)(**kwargs)))
    for cache, new in ((0, 3), (4, 2), (5, 1)):
        shapes = {"query": (2, 4, new, 8), "key_cache": (2, 2, cache, 8),
                  "value_cache": (2, 2, cache, 6), "new_key": (2, 2, new, 8),
                  "new_value": (2, 2, new, 6)}
        kwargs = {k: rng.standard_normal(shape) for k, shape in shapes.items()}
        assert all_same(arrays(_base_ops.decode_step(**kwargs)),
                        arrays(NUMPY_OPS.decode_step(**kwargs)))
    args = _mha_args(rng, False)
    kpm = np.arange(5) >= np.array([[5], [3], [1]])
    options = {"key_padding_mask": kpm, "attn_mask": rng.normal(size=(5, 5))}
    assert all_same(arrays(_base_ops.multi_head_attention(*args, **options)),
                    arrays(NUMPY_OPS.multi_head_attention(*args, **options)))


# --- correct implementations --------------------------------------------------------


def _cases(features):
    """(name, options) the adapter supports; masks are built per case."""
    yield "plain", {}
    yield "bool+gqa", {"attn_mask": "bool"}
    yield "float+scale", {"attn_mask": "float", "scale": 0.4}
    yield "causal", {"is_causal": True}
    if "bottom_right" in features:
        yield "causal-bottom-right", {"is_causal": True, "causal_alignment": "bottom_right"}
    if "window" in features:
        yield "window", {"window": (4, 2)}
    if "softcap" in features:
        yield "softcap", {"softcap": 1.5, "attn_mask": "bool"}


def _to_torch(x, dtype_name):
    import torch

    if not isinstance(x, np.ndarray):
        return x
    if x.dtype == np.bool_:
        return torch.from_numpy(x)
    return torch.from_numpy(x.astype(np.float64)).to(getattr(torch, dtype_name))


def _run(adapter, dtype_name, kwargs):
    if declaration_of(adapter).framework == "torch":
        out = adapter(**{k: _to_torch(v, dtype_name) for k, v in kwargs.items()})
        assert str(out.dtype) == f"torch.{dtype_name}"
        return out.double().numpy()
    out = adapter(**kwargs)
    assert out.dtype == NUMPY_DTYPES[dtype_name]
    return out.astype(np.float64)


SDPA_CORRECT = sorted(name for name, a in CORRECT.items() if callable(a))


def _declared(name):
    """(adapter, declaration); torch adapters skip where torch is missing."""
    decl = declaration_of(CORRECT[name])
    if decl.framework == "torch":
        pytest.importorskip("torch")
    return CORRECT[name], decl


def _case_inputs(seed, options, dtype, gqa):
    """Inputs in ``dtype`` for one case, masks drawn where the case says "bool"/"float"."""
    rng, kw = _random_sdpa_inputs(seed, gqa=gqa)
    kw = {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
    if options.get("attn_mask") == "bool":
        options = {**options, "attn_mask": rng.random((6, 37)) > 0.3}
    elif options.get("attn_mask") == "float":
        bias = np.where(rng.random((6, 37)) > 0.3, rng.normal(size=(6, 37)), -np.inf)
        options = {**options, "attn_mask": bias.astype(dtype)}
    return {**kw, **options}


@pytest.mark.parametrize("name", SDPA_CORRECT)
def test_correct_agrees_with_einsum64(name):
    adapter, decl = _declared(name)
    for dtype_name in decl.dtypes:
        dtype = NUMPY_DTYPES[dtype_name]
        for seed, (case, options) in enumerate(_cases(decl.features)):
            kwargs = _case_inputs(seed, options, dtype, "gqa" in decl.features)
            expected = einsum_sdpa(**{
                k: v.astype(np.float64) if isinstance(v, np.ndarray) and v.dtype != bool else v
                for k, v in kwargs.items()})
            err = np.max(np.abs(_run(adapter, dtype_name, kwargs) - expected))
            bound = tolerance(dtype, float(np.max(np.abs(expected))))
            assert err <= bound, f"{name} {dtype_name} {case}: max err {err:.3g} > {bound:.3g}"


@pytest.mark.parametrize("name", SDPA_CORRECT)
def test_correct_fully_masked_rows(name):
    adapter, decl = _declared(name)
    _, kw = _random_sdpa_inputs(0, gqa=False)
    mask = np.ones((6, 37), dtype=bool)
    mask[3] = False
    got = _run(adapter, "float32" if "float32" in decl.dtypes else decl.dtypes[0],
               {**{k: v.astype(np.float32) if isinstance(v, np.ndarray) else v
                   for k, v in kw.items()}, "attn_mask": mask})
    policy = decl.conventions.get("fully_masked", "zeros")
    expected = kw["value"].mean(axis=-2) if policy == "uniform" else 0.0
    assert np.allclose(got[..., 3, :], expected, atol=1e-6), (name, policy)


def test_torch_mha_agrees_with_numpy_mha():
    pytest.importorskip("torch")
    rng = np.random.default_rng(12)
    mha = CORRECT["torch_mha"].multi_head_attention
    for batch_first, average in ((False, True), (True, False)):
        args = _mha_args(rng, batch_first)
        options = {"key_padding_mask": np.arange(5) >= np.array([[5], [4], [2]]),
                   "attn_mask": rng.normal(size=(5, 5)), "batch_first": batch_first,
                   "average_attn_weights": average}
        assert all_same(arrays(mha(*args, **options)),
                        arrays(NUMPY_OPS.multi_head_attention(*args, **options)))
    unbatched = [a[:, 0] if isinstance(a, np.ndarray) and a.ndim == 3 else a
                 for a in _mha_args(rng, False)]
    assert all_same(arrays(mha(*unbatched, need_weights=False)),
                    arrays(NUMPY_OPS.multi_head_attention(*unbatched, need_weights=False)))


def test_numpy_backward_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    _, kwargs = TRIGGERS["backward_gqa_first_head"]()
    mask = np.random.default_rng(13).random((5, 7)) > 0.3
    ours = NUMPY_OPS.sdpa_backward(**kwargs, attn_mask=mask)
    q, k, v = (torch.tensor(kwargs[n], requires_grad=True) for n in ("query", "key", "value"))
    out = torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=torch.from_numpy(mask), enable_gqa=True)
    out.backward(torch.tensor(kwargs["grad_out"]))
    assert all_same(list(ours), [t.grad.numpy() for t in (q, k, v)])
