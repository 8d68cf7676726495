"""Notebook 003: attention with a padding mask and a no-peek (look-ahead) mask, in torch.

Reproduced in NumPy float32, mirroring the notebook's torch float32 operations
(``tests/test_fix_documents_003.py`` re-runs the torch code where torch is installed and
checks it against these arrays). Inputs: ``arange(50)/100`` viewed as (5, 10), and
Q = K = V = that matrix (identity projections). torch's implicit softmax dim is written
out: ``F.softmax(x)`` uses dim 0 for 0-, 1- and 3-D tensors and dim 1 otherwise.

Bugs found (each array affected names its bug in the manifest):

1. the no-peek mask is filled with ``-1e-9`` instead of ``-1e9``: future keys get a
   score of ~0, so the look-ahead mask does nothing (printed ``importances``);
2. ``F.softmax`` without ``dim``: on the 3-D (1, 5, 5) tensor (In [24]) torch's
   implicit dim is 0, the size-1 batch axis, so every weight is 1.0 (printed);
3. out-of-order execution: the printed percentages and ``result`` are neither of the
   two printed weight matrices; they are the padding-only softmax (no look-ahead mask
   at all), reproduced here as ``padding_only_importances``;
4. ``pad_mask_applied`` is used but its cell is missing from the document; it is
   reconstructed as ``QKt.masked_fill(mask == 0, -1e9)``, the only fill consistent
   with the printed ``-1.0000e+09`` at [4, 4];
5. no 1/√d_k scaling, though the equation the notebook shows has it.

``correct_weights`` / ``correct_result`` are ``reference.sdpa`` with causal and padding
masks (scale 1/√10, the equation); ``*_unscaled`` use the notebook's scale 1, so they
isolate the mask bugs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from conformance.fixturegen._document import DocumentFixture, shape_array
from reference import sdpa

NOTEBOOK = "003_4ddf67070c98d8b5.txt"
SEQ_LEN, D_MODEL = 5, 10
F32 = np.float32
BUG_FILL = ("no-peek mask filled with -1e-9 instead of -1e9: the look-ahead mask does "
            "nothing; see correct_weights")
BUG_IMPLICIT_DIM = ("F.softmax without dim on the 3-D (1, 5, 5) tensor: torch's implicit "
                    "dim is 0 (the size-1 axis), so every weight is 1")
BUG_ORDER = ("out-of-order execution: computed from the padding-only softmax "
             "(padding_only_importances), not from the printed importances; no look-ahead "
             "mask at all")
BUG_MISSING = ("pad_mask_applied's cell is missing from the notebook; reconstructed as "
               "QKt.masked_fill(mask == 0, -1e9), the only fill matching the printed -1e9 "
               "at [4, 4]")
BUG_SCALE = "no 1/sqrt(d_k) scaling, though the equation shown in the notebook has it"


def torch_softmax(x: np.ndarray, dim: int | None = None) -> np.ndarray:
    """``F.softmax(x, dim)`` in float32; ``dim=None`` follows torch's implicit-dim rule."""
    if dim is None:
        dim = 0 if x.ndim in (0, 1, 3) else 1
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return (e / e.sum(axis=dim, keepdims=True)).astype(F32)


def notebook_arrays() -> dict[str, np.ndarray]:
    """The notebook's computation, cell by cell, in float32."""
    dato = np.arange(D_MODEL * SEQ_LEN, dtype=F32).reshape(SEQ_LEN, D_MODEL) / F32(100)
    qkt = dato @ dato.T
    mask = np.array([1, 1, 1, 1, 0], dtype=np.int64)
    pad_applied = np.where(mask == 0, F32(-1e9), qkt).astype(F32)
    no_peak = np.triu(np.ones((SEQ_LEN, SEQ_LEN), dtype=F32)).T[None]
    applied_3d = np.where(no_peak == 0, F32(-1e-9), pad_applied).astype(F32)
    padding_only = torch_softmax(pad_applied, dim=-1)
    rounded = np.round(padding_only, decimals=2) * F32(100)
    return {
        "dato": dato, "QKt": qkt, "mask": mask, "pad_mask_applied": pad_applied,
        "no_peak": no_peak, "no_peak_mask_applied": applied_3d[0],
        "importances": torch_softmax(applied_3d[0]),
        "importances_3d": torch_softmax(applied_3d),
        "padding_only_importances": padding_only,
        "percentages": np.array(rounded, dtype=np.int32),
        "result": padding_only @ dato,
    }


def correct_arrays() -> dict[str, np.ndarray]:
    """Causal + padding attention from the reference, float64."""
    dato = (np.arange(D_MODEL * SEQ_LEN, dtype=np.float64) / 100).reshape(1, SEQ_LEN, D_MODEL)
    visible = np.tril(np.ones((SEQ_LEN, SEQ_LEN), dtype=bool)) & np.array([1, 1, 1, 1, 0],
                                                                         dtype=bool)
    out = {}
    for suffix, scale in (("", None), ("_unscaled", 1.0)):
        result, weights = sdpa(dato, dato, dato, attn_mask=visible, scale=scale,
                               return_weights=True)
        out[f"correct_weights{suffix}"] = weights[0]
        out[f"correct_result{suffix}"] = result[0]
    out["correct_visible"] = visible
    return out


def generate(out_dir: str | Path) -> None:
    doc = DocumentFixture("003", NOTEBOOK, __name__, file_meta={
        "title": "Ejemplo sencillo de atención (con no peek mask)",
        "seed": None, "reproduced_with": "numpy float32 mirroring the notebook's torch "
        "float32 (torch re-check in tests/test_fix_documents_003.py)",
        "params": {"seq_len": SEQ_LEN, "d_model": D_MODEL},
        "bugs": [BUG_FILL, BUG_IMPLICIT_DIM, BUG_ORDER, BUG_MISSING, BUG_SCALE,
                 "hazard: np.array(np.round(w, 2) * 100, dtype='int32') truncates instead "
                 "of rounding (0.29 * 100 = 28.999... -> 28 in float64); no effect here"],
    })
    nb = notebook_arrays()
    add = doc.add
    add("dato", nb["dato"], "printed", "In [2]: print(dato)", "notebook_arrays")
    add("dato_shape", shape_array(nb["dato"].shape), "printed", "In [2]: print(dato.shape)",
        "notebook_arrays")
    add("QKt", nb["QKt"], "printed", "In [12]: QKt", "notebook_arrays", bug=BUG_SCALE)
    add("mask", nb["mask"], "input", "In [13]: mask = torch.tensor([1,1,1,1,0])",
        "notebook_arrays", note="padding mask: 0 marks the padding position 4")
    add("no_peak", nb["no_peak"], "intermediate", "In [21]: build_nopeak_mask(5)",
        "notebook_arrays")
    add("pad_mask_applied", nb["pad_mask_applied"], "intermediate",
        "In [26]: pad_mask_applied (cell missing)", "notebook_arrays", bug=BUG_MISSING)
    add("no_peak_mask_applied", nb["no_peak_mask_applied"], "printed",
        "In [27]: no_peak_mask_applied", "notebook_arrays", bug=BUG_FILL)
    add("importances", nb["importances"], "printed",
        "In [28]: importances = F.softmax(no_peak_mask_applied)", "torch_softmax",
        bug=BUG_FILL)
    add("padding_only_importances", nb["padding_only_importances"], "intermediate",
        "the weights behind the printed percentages and result", "torch_softmax",
        bug=BUG_ORDER)
    add("percentages", nb["percentages"], "printed",
        'In [None]: np.array(np.round(importances, decimals = 2)*100, dtype = "int32")',
        "notebook_arrays", bug=BUG_ORDER)
    add("importances_3d", nb["importances_3d"], "printed",
        "In [24]: importances = F.softmax(no_peak_mask_applied)", "torch_softmax",
        bug=BUG_IMPLICIT_DIM)
    add("result", nb["result"], "printed", "In [None]: result = torch.matmul(importances, V)",
        "notebook_arrays", bug=BUG_ORDER)
    add("result_shape", shape_array(nb["result"].shape), "printed", "In [None]: result.shape",
        "notebook_arrays")
    for name, array in correct_arrays().items():
        note = ("scale 1 as in the notebook: isolates the mask bugs"
                if name.endswith("_unscaled") else "scale 1/sqrt(d_k) as in the equation")
        if name == "correct_visible":
            note = "causal (j <= i) and padding (key 4 hidden): True = may attend"
        add(name, array, "correct", "causal + padding attention done right",
            "correct_arrays", note=note)
    doc.save(out_dir)
