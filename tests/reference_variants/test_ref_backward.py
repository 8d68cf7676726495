"""reference.sdpa_backward against torch autograd through SDPA (float64)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from reference.scaled_dot_product_backward import sdpa_backward  # noqa: E402

ATOL = 1e-10



@dataclass(frozen=True)
class GradCase:
    name: str
    batch: tuple[int, ...] = (2,)
    heads: tuple[int, int] = (2, 2)
    lengths: tuple[int, int] = (7, 7)
    mask: str = "none"  # none | bool | float | bool-bcast | fully-masked-row
    causal: str | None = None  # None | top_left | bottom_right
    scale: float | None = None
    seed: int = 0

    @property
    def id(self) -> str:
        (hq, hk), (lq, lk) = self.heads, self.lengths
        batch = "x".join(map(str, self.batch)) or "0"
        return f"bwd-{self.name}[b{batch}-h{hq}/{hk}-q{lq}-k{lk}]"


CASES = [
    GradCase("plain"),
    GradCase("plain-unbatched", batch=(), lengths=(1, 1)),
    GradCase("lq-ne-lk", batch=(2, 3), lengths=(5, 113), seed=1),
    GradCase("scale", lengths=(7, 3), scale=0.21, seed=2),
    GradCase("gqa", heads=(6, 2), seed=3),
    GradCase("gqa-mqa", heads=(4, 1), lengths=(3, 9), seed=4),
    GradCase("bool-mask", mask="bool", seed=5),
    GradCase("float-mask", mask="float", lengths=(7, 11), seed=6),
    GradCase("bool-bcast-gqa", heads=(4, 2), mask="bool-bcast", seed=7),
    GradCase("fully-masked-row", mask="fully-masked-row", seed=8),
    GradCase("causal", causal="top_left", heads=(4, 2), seed=9),
    GradCase("causal-lq-gt-lk", causal="top_left", lengths=(9, 4), seed=10),
    GradCase("bottom-right", causal="bottom_right", lengths=(3, 8), seed=11),
    GradCase("bottom-right-lq-gt-lk", causal="bottom_right", lengths=(8, 3), seed=12),
]


def _make(case: GradCase):
    rng = np.random.default_rng(case.seed)
    (hq, hk), (lq, lk) = case.heads, case.lengths
    q = rng.standard_normal((*case.batch, hq, lq, 8))
    k = rng.standard_normal((*case.batch, hk, lk, 8))
    v = rng.standard_normal((*case.batch, hk, lk, 5))
    grad = rng.standard_normal((*case.batch, hq, lq, 5))
    mask = {
        "none": None,
        "bool": rng.random((*case.batch, hq, lq, lk)) < 0.7,
        "float": np.where(rng.random((lq, lk)) < 0.2, -np.inf, rng.standard_normal((lq, lk))),
        "bool-bcast": rng.random((hq, 1, lk)) < 0.6,
        "fully-masked-row": np.repeat((np.arange(lq) % 3 != 1)[:, None], lk, axis=1),
    }[case.mask]
    return q, k, v, grad, mask


def _explicit_causal(lq: int, lk: int, alignment: str) -> np.ndarray:
    shift = 0 if alignment == "top_left" else lk - lq
    return np.arange(lk)[None, :] <= np.arange(lq)[:, None] + shift


def _torch_grads(q, k, v, grad, mask, case: GradCase):
    tq, tk, tv = (torch.from_numpy(x).requires_grad_() for x in (q, k, v))
    if case.causal is not None:  # explicit mask: torch's is_causal is top-left only
        mask = _explicit_causal(*case.lengths, case.causal)
    out = F.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=None if mask is None else torch.from_numpy(mask),
        scale=case.scale, enable_gqa=case.heads[0] != case.heads[1])
    out.backward(torch.from_numpy(grad))
    return tuple(t.grad.numpy() for t in (tq, tk, tv))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backward_matches_torch_autograd(case: GradCase) -> None:
    q, k, v, grad, mask = _make(case)
    expected = _torch_grads(q, k, v, grad, mask, case)
    got = sdpa_backward(
        q, k, v, grad, mask, is_causal=case.causal is not None, scale=case.scale,
        enable_gqa=case.heads[0] != case.heads[1],
        causal_alignment=case.causal or "top_left")
    for name, g, e in zip(("dq", "dk", "dv"), got, expected, strict=True):
        assert g.shape == e.shape, f"{name}: shape {g.shape} != {e.shape}"
        np.testing.assert_allclose(g, e, rtol=0, atol=ATOL, err_msg=f"{case.id} {name}")


def test_fully_masked_row_has_zero_query_grad() -> None:
    case = next(c for c in CASES if c.mask == "fully-masked-row")
    q, k, v, grad, mask = _make(case)
    dq, _, _ = sdpa_backward(q, k, v, grad, mask)
    hidden_rows = ~mask.any(axis=-1)
    assert hidden_rows.any()
    np.testing.assert_array_equal(dq[..., hidden_rows, :], 0.0)


def test_backward_against_finite_differences() -> None:
    """Independent of torch: central differences of a loss ⟨grad, sdpa(...)⟩."""
    from reference.scaled_dot_product import sdpa

    rng = np.random.default_rng(20)
    q, k, v = rng.standard_normal((2, 3, 4)), rng.standard_normal((1, 5, 4)), rng.standard_normal(
        (1, 5, 3))
    grad = rng.standard_normal((2, 3, 3))
    mask = rng.random((3, 5)) < 0.8
    mask[:, 0] = True
    got = sdpa_backward(q, k, v, grad, mask, enable_gqa=True)
    inputs = [q, k, v]
    for which, analytic in enumerate(got):
        numeric = np.zeros_like(analytic)
        for idx in np.ndindex(analytic.shape):
            plus, minus = [x.copy() for x in inputs], [x.copy() for x in inputs]
            plus[which][idx] += 1e-6
            minus[which][idx] -= 1e-6
            loss = [np.sum(grad * sdpa(*xs, mask, enable_gqa=True)) for xs in (plus, minus)]
            numeric[idx] = (loss[0] - loss[1]) / 2e-6
        np.testing.assert_allclose(analytic, numeric, rtol=0, atol=1e-7)
