"""Notebook 001: every value it printed, read from the fixture, against the printed text.

The texts below are copied from the notebook's outputs (the document), never produced by
our code; ``test_printed_text_is_the_notebook_s`` checks them against the notebook file
where it is available. NumPy printed them with ``precision=4, suppress=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from fixture_counts import assert_typed_verbatim, reproduce

from conformance.fixtures.store import default_root, entry_of, load_arrays
from reference import VARIANTS, sdpa

NOTEBOOK = "001_5c3bdce876f0754c.txt"
SEEDS = Path(os.environ.get("ATTNCONF_SEEDS", Path(__file__).resolve().parents[2] / "shared"
                            / "seeds"))
FIXTURE = default_root() / "documents" / "notebook_001.npz"

# (cell, fixture array, format, printed text)
PRINTED = [
    ("In [157]", "me_", "numpy4", "[ 0.667   0.0258 -0.7776  0.9486]"),
    ("In [159]", "me_embed_pos", "numpy4", "[ 0.967  -0.8742 -1.3776  1.7486]"),
    ("In [162]", "me_query_shape", "int", "(3,)"),
    ("In [163]", "me_alphas", "numpy4", "[[0.1984 0.203  0.1929 0.2045 0.2012]]"),
    ("In [164]", "me_alphas_col0", "numpy4", "array([0.1984])"),
    ("In [166]", "me_attention", "numpy4", "[[ 0.0066 -0.0286  0.0036]]"),
    ("In [167]", "gusta_alphas", "numpy4",
     "alphas de gusta: [[0.177  0.194  0.2195 0.2076 0.2019]]"),
    ("In [167]", "gusta_attention", "numpy4",
     "atencion de gusta: [[ 0.0062 -0.0306 -0.0024]]"),
    ("In [168]", "estudiar_alphas", "numpy4",
     "alphas de estudiar: [[0.1967 0.2003 0.1981 0.2016 0.2032]]"),
    ("In [168]", "estudiar_attention", "numpy4",
     "atencion de estudiar: [[ 0.0066 -0.0293  0.0018]]"),
    ("In [169]", "inteligencia_alphas", "numpy4",
     "alphas de inteligencia: [[0.1662 0.1897 0.2319 0.2095 0.2027]]"),
    ("In [169]", "inteligencia_attention", "numpy4",
     "atencion de inteligencia: [[ 0.006  -0.0315 -0.0049]]"),
    ("In [170]", "artificial_alphas", "numpy4",
     "alphas de artificial: [[0.1894 0.1939 0.2182 0.1996 0.199 ]]"),
    ("In [170]", "artificial_attention", "numpy4",
     "atencion de artificial: [[ 0.0068 -0.0313 -0.0067]]"),
    ("In [171]", "X", "numpy4", """\
X: [[ 0.967  -0.8742 -1.3776  1.7486]
 [ 0.1017 -0.2511 -1.2675 -0.9875]
 [-0.5221  1.2723 -1.2475  1.1701]
 [-0.5777  0.2603 -1.4435 -1.9099]
 [ 1.3917  1.2889 -1.6381 -1.8888]]"""),
    ("In [173]", "Q", "numpy4", """\
Q: [[-0.2856  0.1529  0.1914]
 [ 0.1156 -0.2958 -0.0378]
 [-0.0123 -0.0164 -0.1174]
 [ 0.2861 -0.5074 -0.1684]
 [ 0.3299 -0.2983 -0.1628]]"""),
    ("In [173]", "K", "numpy4", """\
K: [[ 0.21    0.4861  0.0043]
 [-0.1448  0.0443 -0.0516]
 [-0.0906 -0.3696  0.0938]
 [-0.3261 -0.2561 -0.0451]
 [-0.2622 -0.1248 -0.1372]]"""),
    ("In [173]", "V", "numpy4", """\
V: [[ 0.041  -0.0518 -0.2071]
 [ 0.004   0.0187  0.1207]
 [ 0.0223 -0.1137 -0.3795]
 [-0.006   0.0276  0.1633]
 [-0.0271 -0.0291  0.2981]]"""),
    ("In [174]", "me_query", "numpy4", "[-0.2856  0.1529  0.1914]"),
    ("In [174]", "gusta_query", "numpy4", "[ 0.1156 -0.2958 -0.0378]"),
    ("In [174]", "estudiar_query", "numpy4", "[-0.0123 -0.0164 -0.1174]"),
    ("In [174]", "inteligencia_query", "numpy4", "[ 0.2861 -0.5074 -0.1684]"),
    ("In [174]", "artificial_query", "numpy4", "[ 0.3299 -0.2983 -0.1628]"),
    ("In [175]", "Q_shape", "int", "(5, 3)"),
    ("In [176]", "K_shape", "int", "(5, 3)"),
    ("In [178]", "alphas", "numpy4", """\
alphas: [[0.1984 0.203  0.1929 0.2045 0.2012]
 [0.177  0.194  0.2195 0.2076 0.2019]
 [0.1967 0.2003 0.1981 0.2016 0.2032]
 [0.1662 0.1897 0.2319 0.2095 0.2027]
 [0.1894 0.1939 0.2182 0.1996 0.199 ]]"""),
    ("In [180]", "attention_scores", "numpy4", """\
atencion scores: [[ 0.0066 -0.0286  0.0036]
 [ 0.0062 -0.0306 -0.0024]
 [ 0.0066 -0.0293  0.0018]
 [ 0.006  -0.0315 -0.0049]
 [ 0.0068 -0.0313 -0.0067]]"""),
]
TOTAL = 174  # every number in the outputs of notebook 001


@pytest.fixture(scope="module")
def arrays():
    return load_arrays(FIXTURE)


@pytest.mark.parametrize(("cell", "name", "fmt", "printed"), PRINTED,
                         ids=[f"{c}-{n}" for c, n, _, _ in PRINTED])
def test_printed_value_reproduced(request, arrays, cell, name, fmt, printed):
    reproduce(request, "001", printed, arrays[name], fmt)


def test_every_printed_number_is_covered():
    from fixture_counts import tokens

    assert sum(len(tokens(p)) for *_, p in PRINTED) == TOTAL


def test_printed_text_is_the_notebook_s():
    assert_typed_verbatim(SEEDS / NOTEBOOK, PRINTED)


def test_manifest_names_source_code_and_bug():
    entry = entry_of(FIXTURE)
    assert entry["notebook"] == NOTEBOOK and entry["seed"] == 23
    for name, meta in entry["arrays"].items():
        assert meta["source"].startswith(NOTEBOOK), name
        assert meta["code"].startswith("conformance/fixtures/generate/notebook_001.py:"), name
    assert "1/sqrt(d_k)" in entry["arrays"]["alphas"]["bug"]
    assert any("scaling" in bug for bug in entry["bugs"])


def test_the_only_bug_is_the_missing_scaling(arrays):
    """scale=1 in the reference gives the notebook's numbers; the default gives ``correct_*``."""
    q, k, v = (arrays[n][None] for n in "QKV")
    out, weights = sdpa(q, k, v, scale=1.0, return_weights=True)
    np.testing.assert_allclose(weights[0], arrays["alphas"], rtol=1e-12)
    np.testing.assert_allclose(out[0], arrays["attention_scores"], rtol=1e-12, atol=1e-15)
    out, weights = sdpa(q, k, v, return_weights=True)
    np.testing.assert_allclose(weights[0], arrays["correct_alphas"], rtol=1e-12)
    np.testing.assert_allclose(out[0], arrays["correct_attention"], rtol=1e-12, atol=1e-15)
    assert not np.allclose(arrays["alphas"], arrays["correct_alphas"], atol=1e-3)


def test_self_attention_reference_reproduces_the_printed_output(arrays):
    self_attention = VARIANTS.get("self_attention")
    if self_attention is None:
        pytest.skip("reference.self_attention not registered")
    x, wq, wk, wv = arrays["X"], arrays["W_q"], arrays["W_k"], arrays["W_v"]
    np.testing.assert_allclose(self_attention(x, wq, wk, wv, scale=1.0),
                               arrays["attention_scores"], rtol=1e-12, atol=1e-15)


def test_per_word_cells_equal_the_matrix_form(arrays):
    words = ("me", "gusta", "estudiar", "inteligencia", "artificial")
    per_word = np.concatenate([arrays[f"{w}_alphas"] for w in words])
    np.testing.assert_allclose(per_word, arrays["alphas"], rtol=1e-14)
    np.testing.assert_array_equal(arrays["X"], arrays["word_embeddings"] + arrays["positions"])
