"""Notebook 003: every value it printed, read from the fixture, against the printed text.

The texts below are copied from the notebook's outputs (the document), never produced by
our code. torch printed them with its defaults: 4 decimals, scientific notation when the
magnitudes span too much, ``1.`` for integer-valued tensors. The fixture was computed in
NumPy float32; ``test_torch_rerun_matches_fixture`` re-runs the notebook's torch code.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fixture_counts import assert_typed_verbatim, reproduce, tokens

from conformance.fixtures.store import default_root, entry_of, load_arrays
from reference import sdpa

NOTEBOOK = "003_4ddf67070c98d8b5.txt"
SEEDS = Path(os.environ.get("ATTNCONF_SEEDS", Path(__file__).resolve().parents[2] / "shared"
                            / "seeds"))
FIXTURE = default_root() / "documents" / "notebook_003.npz"

PRINTED = [
    ("In [2]", "dato", "torch4", """\
tensor([[0.0000, 0.0100, 0.0200, 0.0300, 0.0400, 0.0500, 0.0600, 0.0700, 0.0800,
         0.0900],
        [0.1000, 0.1100, 0.1200, 0.1300, 0.1400, 0.1500, 0.1600, 0.1700, 0.1800,
         0.1900],
        [0.2000, 0.2100, 0.2200, 0.2300, 0.2400, 0.2500, 0.2600, 0.2700, 0.2800,
         0.2900],
        [0.3000, 0.3100, 0.3200, 0.3300, 0.3400, 0.3500, 0.3600, 0.3700, 0.3800,
         0.3900],
        [0.4000, 0.4100, 0.4200, 0.4300, 0.4400, 0.4500, 0.4600, 0.4700, 0.4800,
         0.4900]])"""),
    ("In [2]", "dato_shape", "int", "torch.Size([5, 10])"),
    ("In [12]", "QKt", "torch4", """\
tensor([[0.0285, 0.0735, 0.1185, 0.1635, 0.2085],
        [0.0735, 0.2185, 0.3635, 0.5085, 0.6535],
        [0.1185, 0.3635, 0.6085, 0.8535, 1.0985],
        [0.1635, 0.5085, 0.8535, 1.1985, 1.5435],
        [0.2085, 0.6535, 1.0985, 1.5435, 1.9885]])"""),
    ("In [27]", "no_peak_mask_applied", "torch4e", """\
tensor([[ 2.8500e-02, -1.0000e-09, -1.0000e-09, -1.0000e-09, -1.0000e-09],
        [ 7.3500e-02,  2.1850e-01, -1.0000e-09, -1.0000e-09, -1.0000e-09],
        [ 1.1850e-01,  3.6350e-01,  6.0850e-01, -1.0000e-09, -1.0000e-09],
        [ 1.6350e-01,  5.0850e-01,  8.5350e-01,  1.1985e+00, -1.0000e-09],
        [ 2.0850e-01,  6.5350e-01,  1.0985e+00,  1.5435e+00, -1.0000e+09]])"""),
    ("In [28]", "importances", "torch4", """\
tensor([[0.2046, 0.1989, 0.1989, 0.1989, 0.1989],
        [0.2023, 0.2339, 0.1880, 0.1880, 0.1880],
        [0.1759, 0.2247, 0.2871, 0.1562, 0.1562],
        [0.1239, 0.1750, 0.2471, 0.3488, 0.1052],
        [0.1137, 0.1774, 0.2769, 0.4320, 0.0000]])"""),
    ("In [None]", "percentages", "int", """\
array([[23, 24, 26, 27,  0],
       [20, 23, 27, 31,  0],
       [17, 21, 27, 35,  0],
       [14, 20, 28, 39,  0],
       [11, 18, 28, 43,  0]], dtype=int32)"""),
    ("In [24]", "importances_3d", "torchint", """\
tensor([[[1., 1., 1., 1., 1.],
         [1., 1., 1., 1., 1.],
         [1., 1., 1., 1., 1.],
         [1., 1., 1., 1., 1.],
         [1., 1., 1., 1., 1.]]])"""),
    ("In [None]", "result", "torch4", """\
tensor([[0.1556, 0.1656, 0.1756, 0.1856, 0.1956, 0.2056, 0.2156, 0.2256, 0.2356,
         0.2456],
        [0.1680, 0.1780, 0.1880, 0.1980, 0.2080, 0.2180, 0.2280, 0.2380, 0.2480,
         0.2580],
        [0.1801, 0.1901, 0.2001, 0.2101, 0.2201, 0.2301, 0.2401, 0.2501, 0.2601,
         0.2701],
        [0.1917, 0.2017, 0.2117, 0.2217, 0.2317, 0.2417, 0.2517, 0.2617, 0.2717,
         0.2817],
        [0.2027, 0.2127, 0.2227, 0.2327, 0.2427, 0.2527, 0.2627, 0.2727, 0.2827,
         0.2927]])"""),
    ("In [None]", "result_shape", "int", "torch.Size([5, 10])"),
]
TOTAL = 229  # every number in the outputs of notebook 003


@pytest.fixture(scope="module")
def arrays():
    return load_arrays(FIXTURE)


@pytest.mark.parametrize(("cell", "name", "fmt", "printed"), PRINTED,
                         ids=[f"{c}-{n}" for c, n, _, _ in PRINTED])
def test_printed_value_reproduced(request, arrays, cell, name, fmt, printed):
    reproduce(request, "003", printed, arrays[name], fmt)


def test_every_printed_number_is_covered():
    assert sum(len(tokens(p)) for *_, p in PRINTED) == TOTAL


def test_printed_text_is_the_notebook_s():
    assert_typed_verbatim(SEEDS / NOTEBOOK, PRINTED)


def test_manifest_names_each_bug():
    meta = entry_of(FIXTURE)["arrays"]
    assert "-1e-9" in meta["importances"]["bug"]
    assert "implicit" in meta["importances_3d"]["bug"]
    for name in ("percentages", "result"):
        assert "out-of-order" in meta[name]["bug"]
    assert "missing" in meta["pad_mask_applied"]["bug"]
    assert meta["correct_weights"]["kind"] == "correct"


def test_look_ahead_mask_does_nothing(arrays):
    """-1e-9 is a score of ~0: future keys keep about as much weight as any other."""
    printed = arrays["importances"]
    future = np.triu(np.ones((5, 5), dtype=bool), 1)
    assert (printed[future] > 0.1).all()  # every future key keeps > 10 % of the weight
    correct = arrays["correct_weights"]
    assert (correct[future] == 0).all() and (correct[:, 4] == 0).all()
    np.testing.assert_allclose(correct.sum(axis=-1), 1.0, rtol=1e-15)


def test_percentages_and_result_are_the_padding_only_softmax(arrays):
    """Out-of-order execution: they come from neither printed weight matrix."""
    dato = arrays["dato"].astype(np.float64)[None]
    keep = np.array([True, True, True, True, False])
    out, weights = sdpa(dato, dato, dato, attn_mask=keep, scale=1.0, return_weights=True)
    np.testing.assert_allclose(arrays["padding_only_importances"], weights[0], atol=1e-6)
    np.testing.assert_allclose(arrays["result"], out[0], atol=1e-6)
    np.testing.assert_array_equal(
        np.array(np.round(weights[0], 2) * 100 + 1e-9, dtype=np.int32), arrays["percentages"])
    assert not np.allclose(arrays["importances"], arrays["padding_only_importances"], atol=0.01)


def test_correct_weights_are_the_reference(arrays):
    dato = arrays["dato"].astype(np.float64)[None]
    visible = arrays["correct_visible"]
    for suffix, scale in (("", None), ("_unscaled", 1.0)):
        out, weights = sdpa(dato, dato, dato, attn_mask=visible, scale=scale,
                            return_weights=True)
        np.testing.assert_allclose(weights[0], arrays[f"correct_weights{suffix}"], atol=1e-7)
        np.testing.assert_allclose(out[0], arrays[f"correct_result{suffix}"], atol=1e-7)


def test_torch_rerun_matches_fixture(arrays):
    """The notebook's own torch code, cell by cell (implicit softmax dims included)."""
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    seq_len, d_model = 5, 10
    dato = torch.tensor(range(d_model * seq_len), dtype=torch.float32).view(seq_len,
                                                                          d_model) / 100
    qkt = torch.matmul(dato, dato.transpose(-2, -1))
    mask = torch.tensor([1, 1, 1, 1, 0])
    pad_mask_applied = qkt.masked_fill(mask == 0, -1e9)
    no_peak = torch.triu(torch.ones(5, 5)).transpose(0, 1).unsqueeze(0).type(torch.float32)
    applied_3d = pad_mask_applied.masked_fill(no_peak == 0, -1e-9)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        importances = functional.softmax(applied_3d.squeeze(0))
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        importances_3d = functional.softmax(applied_3d)
    padding_only = functional.softmax(pad_mask_applied, dim=-1)
    got = {"dato": dato, "QKt": qkt, "pad_mask_applied": pad_mask_applied,
           "no_peak_mask_applied": applied_3d.squeeze(0), "importances": importances,
           "importances_3d": importances_3d, "padding_only_importances": padding_only,
           "result": torch.matmul(padding_only, dato)}
    for name, tensor in got.items():
        np.testing.assert_allclose(tensor.numpy(), arrays[name], rtol=1e-6, atol=1e-7,
                                   err_msg=name)
    percentages = np.array((torch.round(padding_only, decimals=2) * 100).numpy(), dtype="int32")
    np.testing.assert_array_equal(percentages, arrays["percentages"])
