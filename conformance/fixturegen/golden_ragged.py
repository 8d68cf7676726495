"""Golden cases of ``sdpa_varlen`` and ``paged_attention`` (see ``golden.py``).

Builders return ``(arrays, kwargs)`` like those of ``golden_variants``: the packed
arrays and their integer offsets / block tables by parameter name, the scalar
options as JSON. Paged pools are shuffled, share a prefix page, pad their tables
with −1 and hold NaN in every slot no sequence reads, so a file alone pins that
the reference never reads them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

P = Mapping[str, Any]


def sdpa_varlen(rng, p: P) -> tuple[dict, dict]:
    hq, hk = p["heads"]
    lens_q, lens_k = p["lens_q"], p.get("lens_k", p["lens_q"])
    arrays = {"query": rng.normal(size=(sum(lens_q), hq, p["e"])),
              "key": rng.normal(size=(sum(lens_k), hk, p["e"])),
              "value": rng.normal(size=(sum(lens_k), hk, p["ev"])),
              "cu_seqlens_q": np.concatenate([[0], np.cumsum(lens_q)]).astype(np.int32),
              "cu_seqlens_k": np.concatenate([[0], np.cumsum(lens_k)]).astype(np.int32)}
    kwargs = {k: p[k] for k in ("is_causal", "causal_alignment", "window", "softcap",
                                "return_lse") if k in p}
    if hq != hk:
        kwargs["enable_gqa"] = True
    return arrays, kwargs


def paged_attention(rng, p: P) -> tuple[dict, dict]:
    hq, hk = p["heads"]
    lens, page, shared = p["lens"], p["page"], p.get("shared_pages", 0)
    counts = [-(-n // page) for n in lens]
    own = [c - (shared if b else 0) for b, c in enumerate(counts)]
    num_pages = sum(own) + 2
    ids = rng.permutation(num_pages)
    table = np.full((len(lens), max(counts) + 1), -1, dtype=np.int32)
    nxt = 0
    for b, c in enumerate(counts):
        start = shared if b else 0
        table[b, :start] = table[0, :start]
        table[b, start:c] = ids[nxt:nxt + c - start]
        nxt += c - start
    read = np.zeros((num_pages, page), bool)
    for b, n in enumerate(lens):
        for t in range(n):
            read[table[b, t // page], t % page] = True
    key_pages = rng.normal(size=(num_pages, page, hk, p["e"]))
    value_pages = rng.normal(size=(num_pages, page, hk, p["e"]))
    key_pages[~read], value_pages[~read] = np.nan, np.nan
    arrays = {"query": rng.normal(size=(len(lens), p["lq"], hq, p["e"])),
              "key_pages": key_pages, "value_pages": value_pages, "block_table": table,
              "seq_lens": np.asarray(lens, dtype=np.int32)}
    kwargs = {k: p[k] for k in ("is_causal", "return_lse") if k in p}
    if hq != hk:
        kwargs["enable_gqa"] = True
    return arrays, kwargs


BUILDERS = {"sdpa_varlen": sdpa_varlen, "paged_attention": paged_attention}

CASES = [
    ("sdpa_varlen", "mixed-empty-h2-e8", {"lens_q": [3, 0, 7, 1], "lens_k": [3, 2, 7, 0],
                                          "heads": [2, 2], "e": 8, "ev": 8}),
    ("sdpa_varlen", "causal-bottom_right-gqa-lse-h4kv2-e8v5",
     {"lens_q": [2, 5, 1], "lens_k": [6, 5, 9], "heads": [4, 2], "e": 8, "ev": 5,
      "is_causal": True, "causal_alignment": "bottom_right", "return_lse": True}),
    ("sdpa_varlen", "window-softcap-h2-e4", {"lens_q": [9, 4], "heads": [2, 2], "e": 4,
                                             "ev": 4, "window": [2, 1], "softcap": 1.5}),
    ("paged_attention", "decode-page4-shared-gqa-h4kv2-e8",
     {"lens": [9, 12, 4], "page": 4, "lq": 1, "heads": [4, 2], "e": 8, "shared_pages": 1}),
    ("paged_attention", "prefill3-causal-page5-lse-h2-e4",
     {"lens": [3, 10, 15], "page": 5, "lq": 3, "heads": [2, 2], "e": 4, "is_causal": True,
      "return_lse": True}),
]
