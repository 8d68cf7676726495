"""reference.sdpa against torch's scaled_dot_product_attention (float64), and the
features torch lacks against small loop-by-loop NumPy formulas written here."""

from __future__ import annotations

import itertools
import math
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
attention_bias = pytest.importorskip("torch.nn.attention.bias")

from reference.scaled_dot_product import sdpa  # noqa: E402

ATOL = 1e-12  # float64 against float64: a few ulps of O(1) outputs



@dataclass(frozen=True)
class Case:
    mode: str  # none | causal | bool | float | bool-bcast | float-bcast
    batch: tuple[int, ...]
    heads_q: int
    heads_kv: int
    len_q: int
    len_k: int
    dim: int
    dim_v: int
    scale: float | None
    seed: int

    @property
    def gqa(self) -> bool:
        return self.heads_q != self.heads_kv

    @property
    def id(self) -> str:
        batch = "x".join(map(str, self.batch)) or "0"
        scale = "default" if self.scale is None else f"scale{self.scale}"
        gqa = "-gqa" if self.gqa else ""
        return (f"sdpa-{self.mode}{gqa}[b{batch}-h{self.heads_q}/{self.heads_kv}-"
                f"q{self.len_q}-k{self.len_k}-e{self.dim}-ev{self.dim_v}-{scale}]")

    def mask_shape(self) -> tuple[int, ...] | None:
        full = (*self.batch, self.heads_q, self.len_q, self.len_k)
        return {"bool": full, "float": full, "bool-bcast": (self.heads_q, 1, self.len_k),
                "float-bcast": (self.len_q, self.len_k)}.get(self.mode)


MODES = ("none", "causal", "bool", "float", "bool-bcast", "float-bcast")
LENGTHS = ((1, 1), (7, 7), (1, 7), (7, 113), (113, 7), (113, 113))
HEADS = ((1, 1), (3, 3), (4, 2), (6, 1))
BATCHES = ((), (2,), (2, 3))
DIMS = ((8, 8), (16, 5), (3, 7))


def _cases() -> list[Case]:
    cases = []
    grid = itertools.product(MODES, LENGTHS, HEADS, (None, 0.37))
    for i, (mode, (lq, lk), (hq, hk), scale) in enumerate(grid):
        e, ev = DIMS[(i // 3) % 3]
        cases.append(Case(mode, BATCHES[i % 3], hq, hk, lq, lk, e, ev, scale, seed=1000 + i))
    ids = [c.id for c in cases]
    assert len(set(ids)) == len(ids), "duplicate case ids"
    return cases


CASES = _cases()


def _inputs(case: Case):
    rng = np.random.default_rng(case.seed)
    b = case.batch
    q = rng.standard_normal((*b, case.heads_q, case.len_q, case.dim))
    k = rng.standard_normal((*b, case.heads_kv, case.len_k, case.dim))
    v = rng.standard_normal((*b, case.heads_kv, case.len_k, case.dim_v))
    shape = case.mask_shape()
    if shape is None:
        return q, k, v, None
    if case.mode.startswith("bool"):
        return q, k, v, rng.random(shape) < 0.7
    bias = rng.standard_normal(shape) * 2.0
    return q, k, v, np.where(rng.random(shape) < 0.25, -np.inf, bias)


def _torch_sdpa(q, k, v, mask=None, **kwargs) -> np.ndarray:
    t = {name: torch.from_numpy(x) for name, x in (("query", q), ("key", k), ("value", v))}
    if mask is not None:
        kwargs["attn_mask"] = torch.from_numpy(mask)
    return F.scaled_dot_product_attention(**t, **kwargs).numpy()


def test_enough_cases() -> None:
    assert len(CASES) >= 200
    assert {c.mode for c in CASES} == set(MODES)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_sdpa_matches_torch(case: Case) -> None:
    q, k, v, mask = _inputs(case)
    flags = dict(is_causal=case.mode == "causal", scale=case.scale, enable_gqa=case.gqa)
    expected = _torch_sdpa(q, k, v, mask, **flags)
    got = sdpa(q, k, v, mask, **flags)
    assert got.shape == expected.shape and got.dtype == np.float64
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL, err_msg=case.id)


@pytest.mark.parametrize("len_k", [1, 5, 113])
def test_bottom_right_single_query_sees_every_key(len_k: int) -> None:
    rng = np.random.default_rng(len_k)
    q, k, v = (rng.standard_normal((2, 1 if n == "q" else len_k, 8)) for n in "qkv")
    expected = _torch_sdpa(q, k, v)  # no mask at all
    got = sdpa(q, k, v, is_causal=True, causal_alignment="bottom_right")
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    top_left = sdpa(q, k, v, is_causal=True)  # sees key 0 only
    np.testing.assert_allclose(top_left, np.broadcast_to(v[:, :1], top_left.shape), atol=ATOL)


@pytest.mark.parametrize(("len_q", "len_k"), [(1, 1), (3, 7), (7, 7), (7, 3), (5, 113)])
def test_bottom_right_equals_explicit_mask(len_q: int, len_k: int) -> None:
    rng = np.random.default_rng(10 * len_q + len_k)
    q = rng.standard_normal((2, 4, len_q, 8))
    k, v = rng.standard_normal((2, 2, len_k, 8)), rng.standard_normal((2, 2, len_k, 6))
    i, j = np.arange(len_q)[:, None], np.arange(len_k)[None, :]
    mask = j <= i + (len_k - len_q)  # built here, not by the reference
    expected = _torch_sdpa(q, k, v, mask, enable_gqa=True)
    got = sdpa(q, k, v, is_causal=True, enable_gqa=True, causal_alignment="bottom_right")
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    # torch warns that Lq > Lk "will produce NaNs"; 2.13 gives zeros for those rows
    warns = pytest.warns(UserWarning, match="Lower right") if len_q > len_k else nullcontext()
    with warns:
        lower_right = attention_bias.causal_lower_right(len_q, len_k)
    t = [torch.from_numpy(x) for x in (q, k, v)]
    via_bias = F.scaled_dot_product_attention(*t, attn_mask=lower_right, enable_gqa=True)
    np.testing.assert_allclose(got, via_bias.numpy(), rtol=0, atol=ATOL)


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_rows(kind: str) -> None:
    """torch 2.13 (math and CPU flash backends) returns zeros for a row with no
    visible key, for bool and -inf float masks alike: the ``zeros`` policy."""
    rng = np.random.default_rng(7)
    q, k, v = (rng.standard_normal((2, 5, 4)) for _ in range(3))
    visible = np.ones((5, 5), dtype=bool)
    visible[[1, 3]] = False
    mask = visible if kind == "bool" else np.where(visible, 0.5, -np.inf)
    torch_out = _torch_sdpa(q, k, v, mask)
    assert np.all(torch_out[:, [1, 3]] == 0.0), "torch no longer returns zeros: update DESIGN.md"
    got = sdpa(q, k, v, mask)
    np.testing.assert_allclose(got, torch_out, rtol=0, atol=ATOL)
    assert np.all(np.isnan(sdpa(q, k, v, mask, fully_masked="nan")[:, [1, 3]]))
    uniform = sdpa(q, k, v, mask, fully_masked="uniform")[:, [1, 3]]
    np.testing.assert_allclose(uniform, np.repeat(v.mean(axis=1, keepdims=True), 2, axis=1))


def test_empty_key_sequence_gives_zeros_like_torch() -> None:
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((2, 3, 4)), np.zeros((2, 0, 4)), np.zeros((2, 0, 5))
    expected = _torch_sdpa(q, k, v)
    np.testing.assert_array_equal(sdpa(q, k, v), expected)


# ---- features torch's SDPA lacks: explicit per-(i, j) loops written for this test ----


def _loop_attention(q, k, v, logit, sink=None):
    """out_i = Σ_j p_ij v_j with p_ij ∝ exp(logit(i, j, s_ij)), logit None = hidden."""
    out = np.zeros((q.shape[0], v.shape[1]))
    for i in range(q.shape[0]):
        logits = {}
        for j in range(k.shape[0]):
            value = logit(i, j, float(q[i] @ k[j]) / math.sqrt(q.shape[1]))
            if value is not None:
                logits[j] = value
        total = sum(math.exp(x) for x in logits.values()) + (
            0.0 if sink is None else math.exp(sink))
        for j, x in logits.items():
            out[i] += math.exp(x) / total * v[j]
    return out


def _qkv(seed: int, lq: int = 6, lk: int = 9):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((lq, 5)), rng.standard_normal((lk, 5)), rng.standard_normal((lk, 3))


@pytest.mark.parametrize("alignment", ["top_left", "bottom_right"])
@pytest.mark.parametrize("window", [(2, 0), (1, 3), (None, 1), (0, None)])
def test_window_against_loops(window, alignment) -> None:
    q, k, v = _qkv(1)
    left, right = window
    shift = 0 if alignment == "top_left" else k.shape[0] - q.shape[0]

    def logit(i, j, s):
        lo = -math.inf if left is None else i + shift - left
        hi = math.inf if right is None else i + shift + right
        return s if lo <= j <= hi else None

    got = sdpa(q[None], k[None], v[None], window=window, causal_alignment=alignment)[0]
    np.testing.assert_allclose(got, _loop_attention(q, k, v, logit), rtol=0, atol=ATOL)


def test_softcap_against_loops() -> None:
    q, k, v = _qkv(2)
    q = q * 4.0  # large scores, so the cap matters
    got = sdpa(q[None], k[None], v[None], softcap=2.5)[0]
    expected = _loop_attention(q, k, v, lambda i, j, s: 2.5 * math.tanh(s / 2.5))
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    assert not np.allclose(got, sdpa(q[None], k[None], v[None])[0], atol=1e-3)


@pytest.mark.parametrize("alignment", ["top_left", "bottom_right"])
def test_alibi_against_loops(alignment: str) -> None:
    rng = np.random.default_rng(3)
    q, k, v = rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 7, 5)), rng.standard_normal(
        (2, 7, 3))
    slopes = np.array([0.5, 0.0625])
    shift = 0 if alignment == "top_left" else 3
    got = sdpa(q, k, v, alibi_slopes=slopes, causal_alignment=alignment)
    for h, m in enumerate(slopes):
        expected = _loop_attention(
            q[h], k[h], v[h], lambda i, j, s, m=m: s - m * abs(i + shift - j))
        np.testing.assert_allclose(got[h], expected, rtol=0, atol=ATOL)


def test_sinks_against_loops() -> None:
    rng = np.random.default_rng(4)
    q, k, v = rng.standard_normal((2, 4, 5)), rng.standard_normal((2, 7, 5)), rng.standard_normal(
        (2, 7, 3))
    sinks = np.array([1.5, -0.5])
    got = sdpa(q, k, v, sinks=sinks)
    for h in range(2):
        expected = _loop_attention(q[h], k[h], v[h], lambda i, j, s: s, sink=sinks[h])
        np.testing.assert_allclose(got[h], expected, rtol=0, atol=ATOL)
    # a fully masked row with a sink: the sink takes all the weight, the output is 0
    hidden = sdpa(q, k, v, np.zeros((4, 7), dtype=bool), sinks=sinks)
    np.testing.assert_array_equal(hidden, np.zeros_like(hidden))


def test_dropout_mask_against_loops() -> None:
    q, k, v = _qkv(5)
    keep = np.random.default_rng(6).random((q.shape[0], k.shape[0])) < 0.6
    p = 0.4
    plain = _loop_attention(q, k, v, lambda i, j, s: s)
    weights = np.zeros((q.shape[0], k.shape[0]))
    for i in range(q.shape[0]):
        row = [math.exp(float(q[i] @ k[j]) / math.sqrt(5)) for j in range(k.shape[0])]
        weights[i] = np.array(row) / sum(row)
    expected = (weights * keep / (1 - p)) @ v
    got = sdpa(q[None], k[None], v[None], dropout_p=p, dropout_mask=keep[None])[0]
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)
    assert not np.allclose(got, plain, atol=1e-3)


def test_inputs_not_modified() -> None:
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal((2, 3, 5, 4)) for _ in range(3)]
    mask = np.where(rng.random((5, 5)) < 0.3, -np.inf, 0.1)
    copies = [a.copy() for a in [*arrays, mask]]
    sdpa(*arrays, mask, softcap=3.0, alibi_slopes=np.ones(3), sinks=np.zeros(3))
    for before, after in zip(copies, [*arrays, mask], strict=True):
        np.testing.assert_array_equal(before, after)
