"""Notebook 002: the attention equation as a soft dictionary lookup.

Reproducible: the exact lookup (``data["méxico"]`` → 7, the dict's values), the soft
lookup ``0.30·7 + 0.30·10 + 0.30·8 + 0.10·5`` → 8.0 (float64, left to right as Python
evaluates it), and the final formula ``softmax(Q @ K.T / np.sqrt(d)) @ V`` on seeded
stand-in inputs (``standin_*``, NOT from the notebook; the notebook never calls it).

NOT reproducible: ``searchByMeaning`` prints 2.1743777856094124 from unseeded
``np.random.normal`` draws; stored as printed and checked for plausibility only (a
softmax-weighted mean of the values [10, 5, 2, 4] lies in [2, 10]).

Bugs: ``computeSoftmax`` and ``softmax`` do not subtract the max, so exp overflows to
inf and the output turns NaN once a score passes ~709 (``standin_overflow_*``);
``computeAttention`` has no 1/√d scaling (the later ``attention`` has it);
``getWordEmbedding`` ignores its ``word`` and draws a fresh unseeded vector on every
call (its docstring promises a normalised vector; it is not normalised), so the
"search by meaning" is noise. Hazard: ``attention`` transposes with ``K.T``, which
reverses every axis, so it is only right for 2-D matrices.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.fixturegen._document import DocumentFixture
from reference import sdpa

NOTEBOOK = "002_e994cb68baca16c2.txt"
STANDIN_SEED = 2
DATA = {"méxico": 7, "alemania": 10, "inglaterra": 8, "perro": 5}
SOFT_WEIGHTS = (0.30, 0.30, 0.30, 0.10)
SEARCH_VALUES = (10, 5, 2, 4)
PRINTED_SEARCH = 2.1743777856094124  # In [6], unseeded
BUG_OVERFLOW = ("softmax without max subtraction: exp overflows to inf and the output is "
                "NaN once a score passes ~709; see standin_overflow_correct")
BUG_NOSCALE = "computeAttention has no 1/sqrt(d) scaling (attention() has it)"
BUG_EMBED = ("getWordEmbedding ignores its word and draws unseeded np.random.normal on "
             "every call (not normalised, despite its docstring): the search is noise")


def notebook_softmax(x):
    """The notebook's last ``softmax``: no max subtraction."""
    return np.exp(x) / np.sum(np.exp(x), axis=-1, keepdims=True)


def notebook_attention(q, k, v):
    """The notebook's ``attention(Q, K, V)``."""
    dimension = k.shape[-1]
    return notebook_softmax(q @ k.T / np.sqrt(dimension)) @ v


def compute_attention(q, k, v):
    """The notebook's ``computeAttention`` (no scaling, whole-vector softmax)."""
    return np.exp(q @ k.T) / np.sum(np.exp(q @ k.T)) @ v


def soft_lookup() -> float:
    """In [5]: the weighted sum, evaluated left to right as Python does."""
    w, d = SOFT_WEIGHTS, DATA
    return w[0] * d["méxico"] + w[1] * d["alemania"] + w[2] * d["inglaterra"] + w[3] * d[
        "perro"]


def standin() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(STANDIN_SEED)
    q, k, v = rng.normal(size=(3, 8)), rng.normal(size=(5, 8)), rng.normal(size=(5, 4))
    word = rng.normal(size=8)
    keys = rng.normal(size=(4, 8))
    values = np.array(SEARCH_VALUES, dtype=np.float64)
    big = 60.0  # scores ~ 60² · 8 / √8 ≫ 709: the notebook's softmax overflows
    with np.errstate(over="ignore", invalid="ignore"):
        overflow = notebook_attention(q * big, k * big, v)
    return {
        "Q": q, "K": k, "V": v,
        "notebook_output": notebook_attention(q, k, v),
        "correct_output": sdpa(q[None], k[None], v[None])[0],
        "overflow_scale": np.array(big),
        "overflow_notebook_output": overflow,
        "overflow_correct_output": sdpa(q[None] * big, k[None] * big, v[None])[0],
        "search_query": word, "search_keys": keys, "search_values": values,
        "search_notebook_output": np.array(compute_attention(word, keys, values)),
        "search_correct_output": sdpa(word[None, None], keys[None], values[None, :, None]
                                      )[0, 0, 0],
    }


def generate(out_dir: str | Path) -> None:
    doc = DocumentFixture("002", NOTEBOOK, __name__, file_meta={
        "title": "Comprendiendo la Ecuación de Atención en la Arquitectura Transformer",
        "seed": None, "standin_seed": STANDIN_SEED, "reproduced_with": "numpy float64",
        "unreproducible": "searchByMeaning draws unseeded np.random.normal embeddings: "
                          "the printed 2.1743777856094124 cannot be recomputed",
        "bugs": [BUG_OVERFLOW, BUG_NOSCALE, BUG_EMBED,
                 "hazard: attention() uses K.T, which reverses every axis: right for 2-D "
                 "matrices only, wrong for batched (..., L, d) inputs"],
    })
    doc.add("data_keys", np.array(list(DATA)), "input", "In [4]: data = {...}", "DATA")
    doc.add("data_query", np.array(DATA["méxico"], dtype=np.int64), "printed",
            "In [4]: print(data[query])", "DATA")
    doc.add("data_values", np.array(list(DATA.values()), dtype=np.int64), "printed",
            "In [4]: print(data.values())", "DATA")
    doc.add("soft_weights", np.array(SOFT_WEIGHTS), "input", "In [5]: 0.30 … 0.10",
            "SOFT_WEIGHTS")
    doc.add("soft_lookup", np.array(soft_lookup()), "printed",
            'In [5]: 0.30 * data["méxico"] + … + 0.10 * data["perro"]', "soft_lookup")
    doc.add("search_by_meaning", np.array(PRINTED_SEARCH), "printed-unreproducible",
            'In [6]: print(searchByMeaning("país", [...], [10, 5, 2, 4]))', "PRINTED_SEARCH",
            note="unseeded np.random.normal: cannot be recomputed", bug=BUG_EMBED)
    for name, array in standin().items():
        kind = "correct" if "correct" in name else "stand-in"
        bug = None
        if name.startswith("overflow_notebook"):
            bug = BUG_OVERFLOW
        elif name == "search_notebook_output":
            bug = BUG_NOSCALE
        doc.add(f"standin_{name}", array, kind, "the notebook's functions on seeded "
                "stand-in inputs (NOT from the notebook)", "standin", seed=STANDIN_SEED,
                bug=bug)
    doc.save(out_dir)
