"""Notebook 001: self-attention by hand for «me gusta estudiar inteligencia artificial».

The notebook seeds NumPy's legacy global stream (``np.random.seed(23)``) and draws, in
order: five word embeddings ``randn(4)``, then ``W_q``, ``W_k``, ``W_v`` as
``randn(4, 3) * 0.1``. ``np.random.RandomState(23)`` is the same legacy stream without
touching global state; this is the only place the legacy stream is used, because the
document did. Every value the notebook printed is recomputed here exactly (float64).

Bug: the scores are ``Q Kᵀ`` with no 1/√d_k scaling, both in the per-word cells and in
the matrix form; ``correct_*`` hold what ``reference.sdpa`` gives (scale 1/√3).
Hazard (no effect on the printed numbers): the notebook's ``softmax`` subtracts the row
max *in place* (``x -= ...``), so it mutates an ndarray argument.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.fixturegen._document import DocumentFixture, shape_array
from reference import sdpa

NOTEBOOK = "001_5c3bdce876f0754c.txt"
SEED = 23
D_MODEL, D_K, D_V = 4, 3, 3
WORDS = ("me", "gusta", "estudiar", "inteligencia", "artificial")
# In [158]: the notebook's fixed positional vectors pos_1 … pos_5
POSITIONS = np.array([
    [0.3, -0.9, -0.6, 0.8],
    [-0.6, 0.8, -0.9, 0.15],
    [0.8, -0.5, -0.9, 0.5],
    [-0.9, 0.2, -0.4, -0.9],
    [0.95, 0.16, 0.2, -0.95],
])
NO_SCALING = ("no 1/sqrt(d_k) scaling: the notebook's scores are Q K^T; correct_alphas and "
              "correct_attention hold reference.sdpa with scale 1/sqrt(3)")


def notebook_softmax(x):
    """In [161], verbatim except that it works on a copy (the original mutates ``x``)."""
    x = np.array(x, dtype=float)
    x -= np.max(x, axis=1, keepdims=True)
    return np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)


def draws():
    """In [154]-[160]: the legacy stream of seed 23, in the notebook's order."""
    rng = np.random.RandomState(SEED)
    words = np.stack([rng.randn(D_MODEL) for _ in WORDS])
    w_q = rng.randn(D_MODEL, D_K) * 0.1
    w_k = rng.randn(D_MODEL, D_K) * 0.1
    w_v = rng.randn(D_MODEL, D_V) * 0.1
    return words, w_q, w_k, w_v


def per_word(queries, keys, values):
    """In [163]-[170]: one softmax over a 1×5 list per word, then the weighted sum."""
    alphas, attention = [], []
    for q in queries:
        a = notebook_softmax([[q @ k.T for k in keys]])
        alphas.append(a)
        attention.append(np.array([sum(a[:, j] * values[j] for j in range(len(keys)))]))
    return alphas, attention


def generate(out_dir: str | Path) -> None:
    doc = DocumentFixture("001", NOTEBOOK, __name__, file_meta={
        "title": "Self-attention paso a paso (me gusta estudiar inteligencia artificial)",
        "seed": SEED, "rng": "numpy legacy RandomState (np.random.seed(23) in the notebook)",
        "reproduced_with": "numpy float64",
        "params": {"d_model": D_MODEL, "d_k": D_K, "d_v": D_V, "weight_scale": 0.1},
        "bugs": [NO_SCALING,
                 "hazard: softmax() subtracts the max in place, mutating an ndarray argument "
                 "(no effect on the printed values)"],
    })
    words, w_q, w_k, w_v = draws()
    x = words + POSITIONS
    queries, keys, values = x @ w_q, x @ w_k, x @ w_v
    doc.add("word_embeddings", words, "intermediate", "In [156]: me_ … artificial_ = "
            "np.random.randn(d_model)", "draws", seed=SEED)
    doc.add("positions", POSITIONS, "input", "In [158]: pos_1 … pos_5", "POSITIONS")
    for name, w in (("W_q", w_q), ("W_k", w_k), ("W_v", w_v)):
        doc.add(name, w, "intermediate", f"In [160]: {name} = np.random.randn(d_model, d_k)"
                " * 0.1", "draws", seed=SEED)
    doc.add("me_", words[0], "printed", "In [157]: print(me_)", "draws", seed=SEED)
    doc.add("me_embed_pos", x[0], "printed", "In [159]: print(me_embed_pos)", "generate")
    doc.add("me_query_shape", shape_array(queries[0].shape), "printed",
            "In [162]: me_query.shape", "generate")
    alphas, attention = per_word(queries, keys, values)
    cells = {"me": (163, 166), "gusta": (167, 167), "estudiar": (168, 168),
             "inteligencia": (169, 169), "artificial": (170, 170)}
    for i, word in enumerate(WORDS):
        a_cell, o_cell = cells[word]
        doc.add(f"{word}_alphas", alphas[i], "printed",
                f"In [{a_cell}]: print({word}_alphas)", "per_word", bug=NO_SCALING)
        doc.add(f"{word}_attention", attention[i], "printed",
                f"In [{o_cell}]: print({word}_attention)", "per_word", bug=NO_SCALING)
        if word == "me":
            doc.add("me_alphas_col0", alphas[0][:, 0], "printed", "In [164]: me_alphas[:,0]",
                    "per_word", bug=NO_SCALING)
    doc.add("X", x, "printed", 'In [171]: print("X:", X)', "generate")
    for name, m in (("Q", queries), ("K", keys), ("V", values)):
        doc.add(name, m, "printed", f'In [173]: print("{name}:", {name})', "generate")
    for i, word in enumerate(WORDS):
        doc.add(f"{word}_query", queries[i], "printed", f"In [174]: print({word}_query)",
                "generate")
    doc.add("Q_shape", shape_array(queries.shape), "printed", "In [175]: print(Q.shape)",
            "generate")
    doc.add("K_shape", shape_array(keys.shape), "printed", "In [176]: print(K.shape)",
            "generate")
    matrix_alphas = notebook_softmax(queries @ keys.T)
    doc.add("alphas", matrix_alphas, "printed", 'In [178]: print("alphas:", alphas)',
            "notebook_softmax", bug=NO_SCALING)
    doc.add("attention_scores", matrix_alphas @ values, "printed",
            'In [180]: print("atencion scores:", attention_scores)', "generate",
            bug=NO_SCALING)
    out, weights = sdpa(queries[None], keys[None], values[None], return_weights=True)
    doc.add("correct_alphas", weights[0], "correct", "In [178] done right",
            "reference.sdpa(return_weights=True)", params={"scale": "1/sqrt(d_k)"})
    doc.add("correct_attention", out[0], "correct", "In [180] done right", "reference.sdpa",
            params={"scale": "1/sqrt(d_k)"})
    doc.save(out_dir)
