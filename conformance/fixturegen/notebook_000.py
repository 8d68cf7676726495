"""Notebook 000: an encoder's self-attention on the bag-of-words of a 5-sentence corpus.

Reproducible: the vocabulary (In [2], a lower-cased whitespace split), the count matrix
of ``CountVectorizer()`` (In [3]; its default tokenizer is re-implemented here: lower
case, tokens matching ``(?u)\\b\\w\\w+\\b``, vocabulary sorted; scikit-learn is not used)
and every printed shape.

NOT reproducible: ``wq``, ``wk``, ``wv`` are ``np.random.rand(dk, dk)`` with no seed, so
the printed ``scores`` (In [7]) cannot be recomputed; they are stored as printed and
checked for plausibility only. The attention is computed on the count matrix with a
seeded stand-in (``np.random.default_rng(STANDIN_SEED).random``, the same U[0, 1)
distribution): every ``standin_*`` array is ours, NOT from the notebook.

Bugs: In [9] normalises ``exp(scores)`` over the whole matrix (``np.sum(exp_z)``), so no
row sums to 1; neither it nor ``self_attention`` subtracts the max (exp overflows once a
score passes ~709; the printed scores reach 72, already one-hot); In [5] prints
``wq.shape`` where it means ``wk.shape`` (hidden because the shapes agree).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from conformance.fixturegen._document import DocumentFixture, shape_array
from reference import sdpa

NOTEBOOK = "000_071cf086eca5ba47.txt"
STANDIN_SEED = 0
CORPUS = (
    "El anime es un buen hobby",
    "El manga es más popular que los comics",
    "El anime es más popular que el manga",
    "La música es un buen hobby",
    "El anime es más popular que la música",
)
TOKEN_PATTERN = r"(?u)\b\w\w+\b"  # CountVectorizer's default token_pattern
# In [7], as printed (unseeded: not reproducible)
PRINTED_SCORES = np.array([
    [32.97126002, 51.89504973, 48.43355919, 33.78079302, 47.95604323],
    [42.61320446, 67.28849646, 63.50355035, 43.80954286, 62.28662937],
    [45.69686486, 71.97222966, 68.01230343, 46.48062696, 66.47584517],
    [30.56577016, 48.51749389, 44.99623333, 31.50346291, 44.43792596],
    [43.60056793, 69.30609107, 64.90946071, 44.6324581, 63.44948821],
])
BUG_WHOLE = ("softmax normalised over the whole matrix (exp_z / np.sum(exp_z)), not per "
             "row; see standin_correct_weights")
BUG_COPY = "In [5] prints wq.shape where wk.shape is meant (same shape, so it does not show)"
UNSEEDED = "np.random.rand without a seed: cannot be recomputed"


def split_vocabulary(corpus) -> list[str]:
    """In [2]: ``sorted(set(word for s in corpus for word in s.lower().split()))``."""
    return sorted({word for sentence in corpus for word in sentence.lower().split()})


def count_vectorize(corpus) -> tuple[list[str], np.ndarray]:
    """``CountVectorizer().fit_transform(corpus).toarray()`` with its default options."""
    docs = [re.findall(TOKEN_PATTERN, sentence.lower()) for sentence in corpus]
    vocabulary = sorted({token for doc in docs for token in doc})
    index = {token: j for j, token in enumerate(vocabulary)}
    counts = np.zeros((len(docs), len(vocabulary)), dtype=np.int64)
    for i, doc in enumerate(docs):
        for token in doc:
            counts[i, index[token]] += 1
    return vocabulary, counts


def notebook_self_attention(q, k, v):
    """The notebook's final ``self_attention`` (row-normalised, no max subtraction)."""
    scores = np.dot(q, k.T) / np.sqrt(q.shape[1])
    attention_weights = np.exp(scores) / np.sum(np.exp(scores), axis=1)[:, None]
    return np.dot(attention_weights, v)


def standin(x: np.ndarray) -> dict[str, np.ndarray]:
    """The notebook's In [4]-[9] on the count matrix, with seeded stand-in weights."""
    dk = x.shape[1]
    rng = np.random.default_rng(STANDIN_SEED)
    wq, wk, wv = (rng.random((dk, dk)) for _ in range(3))
    q, k, v = (np.dot(x, w) for w in (wq, wk, wv))
    scores = np.dot(q, k.T) / np.sqrt(dk)
    exp_z = np.exp(scores)
    aw = exp_z / np.sum(exp_z)
    out, weights = sdpa(q[None], k[None], v[None], return_weights=True)
    return {"wq": wq, "wk": wk, "wv": wv, "scores": scores, "notebook_weights": aw,
            "notebook_output": np.dot(aw, v), "self_attention_output":
            notebook_self_attention(q, k, v), "correct_weights": weights[0],
            "correct_output": out[0]}


def generate(out_dir: str | Path) -> None:
    doc = DocumentFixture("000", NOTEBOOK, __name__, file_meta={
        "title": "Programando un Encoder: self-attention sobre CountVectorizer",
        "seed": None, "standin_seed": STANDIN_SEED, "reproduced_with": "numpy float64",
        "unreproducible": "wq, wk, wv come from np.random.rand with no seed: the printed "
                          "scores (In [7]) cannot be recomputed; standin_* arrays use "
                          f"np.random.default_rng({STANDIN_SEED}) instead and are NOT from "
                          "the notebook",
        "bugs": [BUG_WHOLE, "no max subtraction in In [9] nor in self_attention(): exp "
                 "overflows once a score passes ~709", BUG_COPY],
    })
    vocab = split_vocabulary(CORPUS)
    cv_vocab, x = count_vectorize(CORPUS)
    doc.add("corpus", np.array(CORPUS), "input", "In [1]: corpus", "CORPUS")
    doc.add("vocab", np.array(vocab), "printed", "In [2]: print(vocab)", "split_vocabulary")
    doc.add("vocab_len", np.array(len(vocab), dtype=np.int64), "printed",
            "In [2]: print(len(vocab))", "split_vocabulary")
    doc.add("vectorizer_vocabulary", np.array(cv_vocab), "intermediate",
            "In [3]: CountVectorizer() vocabulary (columns of x)", "count_vectorize",
            note=f"default token_pattern {TOKEN_PATTERN}, lower-cased, sorted; equal to "
                 "vocab here because every word has >= 2 characters")
    doc.add("x", x, "printed", "In [3]: print(x)", "count_vectorize")
    dk = x.shape[1]
    for name, shape, cell, note in (
        ("wq_shape", (dk, dk), "In [4]: print(wq.shape)", None),
        ("q_shape", (len(CORPUS), dk), "In [4]: print(q.shape)", None),
        ("wq_shape_in5", (dk, dk), "In [5]: print(wq.shape)", BUG_COPY),
        ("k_shape", (len(CORPUS), dk), "In [5]: print(k.shape)", None),
        ("wv_shape", (dk, dk), "In [6]: print(wv.shape)", None),
        ("v_shape", (len(CORPUS), dk), "In [6]: print(v.shape)", None),
    ):
        doc.add(name, shape_array(shape), "printed", cell, "generate", bug=note)
    doc.add("scores", PRINTED_SCORES, "printed-unreproducible", "In [7]: print(scores)",
            "PRINTED_SCORES", note=UNSEEDED)
    for name, array in standin(x).items():
        bug = BUG_WHOLE if name.startswith("notebook_") else None
        kind = "correct" if name.startswith("correct_") else "stand-in"
        doc.add(f"standin_{name}", array, kind, "In [4]-[9] on the count matrix with "
                "seeded stand-in weights (NOT from the notebook)", "standin",
                seed=STANDIN_SEED, bug=bug)
    doc.save(out_dir)
