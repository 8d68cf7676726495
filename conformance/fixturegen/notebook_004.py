"""Notebook 004: multi-head self-attention and relative attention (Music Transformer).

The notebook prints only shapes, the ``np.split`` example and an unseeded
``nn.Embedding`` lookup. Its data (``X``, ``WQ``, ``WK``, ``WV``, ``S_rel``) are unseeded
``np.random.rand``, so the shape contracts are pinned on seeded stand-ins
(``np.random.default_rng(STANDIN_SEED)``, same distributions; NOT from the notebook):
L = 40, D = 144, H = 12 heads of D/H = 12 columns. Split: head h is the column block
``[:, 12h:12(h+1)]`` (``np.split(Q, H, axis=1)``); merge is its inverse. The
feed-forward layer is only a comment in the notebook (``FF(Z) = ReLU(Z W_1 + b1) W_2 +
b_2``); it is pinned here with a stand-in width F = 16.

Bugs: ``softmax`` normalises over the whole (L, L) matrix, not per row (both in
``attention`` and ``RelativeAttention``); the heads are never merged nor projected by an
output matrix; ``RelativeAttention`` takes a random (L, L) ``S_rel`` instead of
``S_rel[i, j] = q_i · E[j − i + L − 1]`` (the skew) and is not causal, unlike the paper
it cites. The embedding lookup (In [5]) is unseeded torch: its numbers cannot be
recomputed; what can be checked is that equal token ids print equal rows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.fixturegen._document import DocumentFixture, shape_array
from reference import sdpa
from reference.feed_forward import feed_forward
from reference.relative_music import relative_attention

NOTEBOOK = "004_894dca7cd28f2a45.txt"
STANDIN_SEED = 4
L, D, H = 40, 144, 12
D_FF = 16
BUG_WHOLE = "softmax normalised over the whole matrix, not per row; see standin_Z_correct"
BUG_REL = ("S_rel is a random (L, L) matrix, not q_i·E[j-i+L-1], and no causal mask "
           "(Music Transformer is causal); see standin_music_transformer")
# In [5], as printed (unseeded nn.Embedding(10, 3))
EMBEDDING_IDS = np.array([[1, 2, 4, 5], [4, 3, 2, 9]])
EMBEDDING_PRINTED = np.array([
    [[-1.0822, -1.0538, 0.3082], [-0.5295, 1.7187, -0.7728],
     [0.0030, -1.6887, 1.1244], [-0.6188, -0.7175, 1.7277]],
    [[0.0030, -1.6887, 1.1244], [-0.5251, 0.6920, 0.7796],
     [-0.5295, 1.7187, -0.7728], [-0.3023, 0.0087, -1.0053]],
])


def notebook_softmax(x):
    exp_x = np.exp(x)
    return exp_x / exp_x.sum()


def notebook_attention(q_h, k_h, v_h, s_rel=0.0):
    """``attention`` (s_rel = 0) and ``RelativeAttention`` of the notebook."""
    num = np.dot(q_h, k_h.T) + s_rel
    den = (D / H) ** 0.5
    return np.dot(notebook_softmax(num / den), v_h)


def split_heads(m: np.ndarray) -> np.ndarray:
    """(L, D) → (H, L, D/H), the notebook's ``np.array(np.split(m, H, axis=1))``."""
    return np.array(np.split(m, H, axis=1))


def merge_heads(z: np.ndarray) -> np.ndarray:
    """(H, L, D/H) → (L, D): the inverse of ``split_heads``."""
    return np.concatenate(list(z), axis=1)


def standin() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(STANDIN_SEED)
    x = rng.random((L, D)) * 2 - 1
    q, k, v = (x @ rng.random((D, D)) for _ in range(3))
    qh, kh, vh = split_heads(q), split_heads(k), split_heads(v)
    z_notebook = np.array([notebook_attention(qh[h], kh[h], vh[h]) for h in range(H)])
    z_correct = sdpa(qh, kh, vh)
    merged = merge_heads(z_correct)
    w1, b1 = rng.normal(size=(D, D_FF)) / np.sqrt(D), rng.normal(size=D_FF)
    w2, b2 = rng.normal(size=(D_FF, D)) / np.sqrt(D_FF), rng.normal(size=D)
    s_rel = rng.random((L, L))
    rel_embeddings = rng.normal(size=(L, D // H))
    return {
        "Q": q, "K": k, "V": v, "Z_notebook": z_notebook, "Z_correct": z_correct,
        "merged": merged,
        "ff_w1": w1, "ff_b1": b1, "ff_w2": w2, "ff_b2": b2,
        "ff_out": feed_forward(merged, w1, b1, w2, b2),
        "S_rel": s_rel, "rel_notebook": notebook_attention(qh[0], kh[0], vh[0], s_rel),
        "rel_correct": sdpa(qh[:1], kh[:1], vh[:1], attn_mask=s_rel / np.sqrt(D // H))[0],
        "rel_embeddings": rel_embeddings,
        "music_transformer": relative_attention(qh[:1], kh[:1], vh[:1], rel_embeddings)[0],
    }


def generate(out_dir: str | Path) -> None:
    doc = DocumentFixture("004", NOTEBOOK, __name__, file_meta={
        "title": "Self-Attention Layer (Music Transformer, arXiv 1809.04281)",
        "seed": None, "standin_seed": STANDIN_SEED, "reproduced_with": "numpy float64",
        "params": {"L": L, "D": D, "H": H, "d_ff_standin": D_FF},
        "unreproducible": "X, WQ, WK, WV, S_rel: unseeded np.random.rand; the embedding "
                          "lookup: unseeded torch nn.Embedding. standin_* arrays use "
                          f"np.random.default_rng({STANDIN_SEED}) and are NOT from the "
                          "notebook",
        "bugs": [BUG_WHOLE, "heads are never merged nor projected (no W_O)", BUG_REL],
    })
    shapes = (
        ("X_shape", (L, D), "In [174]: X.shape"),
        ("Q_shape", (L, D), "In [176]: Q.shape"),
        ("Q0_shape", (L, D // H), "In [179]: Q[0].shape"),
        ("rel_out_shape", (L, D // H), "In [162]: RelativeAttention(Q[0], K[0], V[0], "
                                       "S_rel).shape"),
        ("K0T_shape", (D // H, L), "In [151]: K[0].T.shape"),
    )
    for name, shape, cell in shapes:
        doc.add(name, shape_array(shape), "printed", cell, "generate")
    example = np.array([[1, 2, 3, 4], [1, 2, 3, 4]])
    doc.add("split_example", np.array(np.split(example, 2, axis=1)), "printed",
            "In [177]: np.split(a, 2, axis=1)", "generate")
    doc.add("embedding_ids", EMBEDDING_IDS, "input", "In [5]: input_sequences", "generate")
    doc.add("embedding_printed", EMBEDDING_PRINTED, "printed-unreproducible",
            "In [5]: embedding(input_sequences)", "EMBEDDING_PRINTED",
            note="unseeded nn.Embedding(10, 3): only 'equal ids give equal rows' is checked")
    for name, array in standin().items():
        bug = {"Z_notebook": BUG_WHOLE, "rel_notebook": f"{BUG_WHOLE}; {BUG_REL}"}.get(name)
        kind = "correct" if name in ("Z_correct", "rel_correct", "music_transformer",
                                     "merged", "ff_out") else "stand-in"
        doc.add(f"standin_{name}", array, kind, "stand-in for the notebook's unseeded "
                "data (NOT from the notebook)", "standin", seed=STANDIN_SEED, bug=bug)
    doc.save(out_dir)
