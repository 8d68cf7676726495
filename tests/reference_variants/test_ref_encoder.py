"""reference.encoder_layer against torch.nn.TransformerEncoderLayer, and
reference.feed_forward against an nn.Sequential (eval, float64)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from reference.encoder import EncoderLayerWeights, encoder_layer  # noqa: E402
from reference.position_wise import feed_forward  # noqa: E402

ATOL = 1e-12
D_MODEL, HEADS, D_FF, LENGTH, BATCH = 8, 2, 16, 5, 3



def _randomise(module: nn.Module, seed: int) -> None:
    """Every parameter, biases and LayerNorm γ/β included, from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.from_numpy(rng.standard_normal(tuple(p.shape)) * 0.5))


def _state(module: nn.Module) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


ENCODER_OPTIONS = list(itertools.product(
    (False, True),  # norm_first
    ("relu", "gelu"),
    (False, True),  # batch_first
    (True, False),  # bias
    ("none", "padding", "bool", "float"),  # masks
))


def _encoder_id(opts) -> str:
    norm_first, act, batch_first, bias, masks = opts
    return "-".join(["prenorm" if norm_first else "postnorm", act, "bf" if batch_first else "sf",
                     "bias" if bias else "nobias", f"mask_{masks}"])


def _masks(kind: str, rng):
    if kind == "none":
        return None, None
    if kind == "padding":
        padding = rng.random((BATCH, LENGTH)) < 0.4
        padding[:, 0] = False
        return None, padding
    hide = np.triu(np.ones((LENGTH, LENGTH), dtype=bool), k=1)  # causal, torch convention
    if kind == "bool":
        return hide, None
    return np.where(hide, -np.inf, rng.standard_normal(hide.shape)), None


@pytest.mark.parametrize("opts", ENCODER_OPTIONS, ids=[_encoder_id(o) for o in ENCODER_OPTIONS])
def test_encoder_layer_matches_torch(opts) -> None:
    norm_first, activation, batch_first, bias, mask_kind = opts
    seed = ENCODER_OPTIONS.index(opts)
    layer = nn.TransformerEncoderLayer(
        D_MODEL, HEADS, D_FF, dropout=0.0, activation=activation, layer_norm_eps=1e-3,
        batch_first=batch_first, norm_first=norm_first, bias=bias, dtype=torch.float64).eval()
    _randomise(layer, seed)
    rng = np.random.default_rng(seed)
    shape = (BATCH, LENGTH, D_MODEL) if batch_first else (LENGTH, BATCH, D_MODEL)
    src = rng.standard_normal(shape)
    src_mask, padding = _masks(mask_kind, rng)
    # torch's eval fast path (taken under no_grad) turns a float src_mask into a bool
    # one and returns NaN (pytorch/pytorch#118628, still in 2.13): with grad enabled
    # the layer takes the documented path, which is what the reference follows.
    with torch.enable_grad() if mask_kind == "float" else torch.no_grad():
        expected = layer(
            torch.from_numpy(src),
            src_mask=None if src_mask is None else torch.from_numpy(src_mask),
            src_key_padding_mask=None if padding is None else torch.from_numpy(padding),
        ).detach().numpy()
    got = encoder_layer(
        src, EncoderLayerWeights.from_state_dict(_state(layer)), HEADS, src_mask=src_mask,
        src_key_padding_mask=padding, norm_first=norm_first, activation=activation,
        layer_norm_eps=1e-3, batch_first=batch_first)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


@pytest.mark.parametrize("norm_first", [False, True])
def test_encoder_layer_unbatched(norm_first: bool) -> None:
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0, norm_first=norm_first,
                                       dtype=torch.float64).eval()
    _randomise(layer, 11)
    src = np.random.default_rng(11).standard_normal((LENGTH, D_MODEL))
    with torch.no_grad():
        expected = layer(torch.from_numpy(src)).numpy()
    got = encoder_layer(src, EncoderLayerWeights.from_state_dict(_state(layer)), HEADS,
                        norm_first=norm_first)
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_pre_and_post_norm_differ() -> None:
    """Guards the norm_first switch: both orders must not collapse to one."""
    layer = nn.TransformerEncoderLayer(D_MODEL, HEADS, D_FF, dropout=0.0, dtype=torch.float64)
    _randomise(layer, 3)
    weights = EncoderLayerWeights.from_state_dict(_state(layer))
    src = np.random.default_rng(3).standard_normal((LENGTH, BATCH, D_MODEL))
    post = encoder_layer(src, weights, HEADS)
    pre = encoder_layer(src, weights, HEADS, norm_first=True)
    assert np.abs(post - pre).max() > 1e-2


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("shape", [(7, D_MODEL), (2, 3, D_MODEL), (D_MODEL,)])
def test_feed_forward_matches_sequential(activation: str, bias: bool, shape) -> None:
    act = nn.ReLU() if activation == "relu" else nn.GELU()
    seq = nn.Sequential(nn.Linear(D_MODEL, D_FF, bias=bias, dtype=torch.float64), act,
                        nn.Linear(D_FF, D_MODEL, bias=bias, dtype=torch.float64)).eval()
    _randomise(seq, len(shape))
    x = np.random.default_rng(len(shape)).standard_normal(shape)
    with torch.no_grad():
        expected = seq(torch.from_numpy(x)).numpy()
    lin1, lin2 = seq[0], seq[2]

    def arr(t):
        return None if t is None else t.detach().numpy()

    # feed_forward takes the paper's input-major layout: the transpose of nn.Linear.weight
    got = feed_forward(x, arr(lin1.weight).T, arr(lin1.bias), arr(lin2.weight).T,
                       arr(lin2.bias), activation=activation)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def test_feed_forward_notebook_formula() -> None:
    """Seed notebook 004: FF(Z) = ReLU(Z W_1 + b1) W_2 + b_2, spelled out row by row."""
    rng = np.random.default_rng(4)
    z, w1, b1 = rng.standard_normal((4, 6)), rng.standard_normal((6, 10)), rng.standard_normal(10)
    w2, b2 = rng.standard_normal((10, 6)), rng.standard_normal(6)
    expected = np.array([[max(0.0, float(row @ w1[:, f] + b1[f])) for f in range(10)]
                         for row in z]) @ w2 + b2
    np.testing.assert_allclose(feed_forward(z, w1, b1, w2, b2), expected, rtol=0, atol=ATOL)
