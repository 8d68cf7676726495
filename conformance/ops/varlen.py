"""Op ``sdpa_varlen``: packed variable-length batches (flash-attn's varlen layout).

Cases are sequence-length mixes — all equal, one long and many short, empty
sequences and queries without keys, Lq ≠ Lk both ways, lengths at tile
boundaries (63/64/65, 127/128/129) — crossed with causal in both alignments,
GQA (ratios 2 and 3), window, softcap, ALiBi, scale and lse; in ci and full a
pack of 64 sequences, 16k tokens. Packing invariance ("each sequence as if it
were alone") is what the reference *is* (``reference/varlen.py``, tested
against dense sdpa per sequence): every case checks it, and a kernel that lets a
query see a neighbour's keys fails the case whose neighbour differs. The ``packing``
property (checks/property_bodies.py) checks it again without the reference: the adapter's
pack against its own calls of each sequence alone (``pack`` builds both).
Signature: docs/ops.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME
from conformance.cases import AttentionShapes, Case
from conformance.ops._packed import (
    LONG_DTYPES,
    Scenario,
    arguments_for,
    build_cases,
    expected_for,
    outputs,
    recipe_of,
)
from conformance.ops.spec import OpSpec
from conformance.profiles import Profile
from reference.varlen import sdpa_varlen

POSITIONAL = ("query", "key", "value", "cu_seqlens_q", "cu_seqlens_k")


def _mix(q: list[int], k: list[int] | None = None, heads=(2, 2), dim=16, dim_v=16):
    return {"lens_q": q, "lens_k": q if k is None else k, "heads": heads, "dim": dim,
            "dim_v": dim_v}


def long_pack() -> list[int]:
    """64 lengths summing to 16384: one of 2048, three of 1024, ten of 512, fifty short."""
    short = [(37 * i) % 113 + 1 for i in range(50)]
    lens = [2048, *[1024] * 3, *[512] * 10, *short]
    lens[-1] += 16384 - sum(lens)
    return lens


BR = {"is_causal": True, "causal_alignment": "bottom_right"}
TL = {"is_causal": True, "causal_alignment": "top_left"}
MIXED = [5, 1, 12, 3, 8]
SCENARIOS = (
    Scenario("equal", _mix([8, 8, 8, 8]), core=True),
    Scenario("one-long-many-short", _mix([65, 1, 3, 1, 2, 1, 4]), core=True),
    Scenario("empty-sequences", _mix([0, 5, 0, 3, 7], [0, 5, 4, 0, 7]), core=True),
    Scenario("cross-lengths", _mix([3, 1, 7], [9, 4, 2], dim_v=8)),
    Scenario("tile-boundaries", _mix([63, 64, 65, 127, 128, 129], dim=32, dim_v=32), TL),
    Scenario("causal", _mix(MIXED), TL, core=True),
    Scenario("causal-bottom-right", _mix([2, 1, 5, 3], [9, 4, 5, 3]), BR),
    Scenario("gqa", _mix([31, 33, 1], heads=(4, 2)), {"enable_gqa": True}, core=True),
    Scenario("gqa-ratio-3-causal", _mix([17, 9, 40], heads=(6, 2)),
             {"enable_gqa": True, **TL}),
    Scenario("window", _mix([13, 2, 9]), {"window": (3, 1)}),
    Scenario("softcap", _mix(MIXED), {"softcap": 0.8}),
    Scenario("alibi", _mix(MIXED), {"alibi_slopes": (0.5, 0.25), **TL}),
    Scenario("scale", _mix(MIXED), {"scale": 0.37}),
    Scenario("lse", _mix([0, 4, 9], [3, 4, 9]), {"return_lse": True}),
    Scenario("long-64-sequences", _mix(long_pack(), heads=(2, 2), dim=64, dim_v=64), TL,
             profiles=("ci", "full"), dtypes=LONG_DTYPES),
)


def label(recipe: dict[str, Any]) -> str:
    hq, hk = recipe["heads"]
    heads = f"h{hq}" + (f"/{hk}" if hk != hq else "")
    dims = f"e{recipe['dim']}" + (f"v{recipe['dim_v']}" if recipe["dim_v"] != recipe["dim"]
                                   else "")
    return (f"n{len(recipe['lens_q'])}-q{sum(recipe['lens_q'])}-k{sum(recipe['lens_k'])}-"
            f"{heads}-{dims}")


def size(recipe: dict[str, Any]) -> AttentionShapes:
    """For the timeout: the pack as one call of total_q queries over its longest sequence."""
    hq, hk = recipe["heads"]
    return AttentionShapes((), hq, hk, sum(recipe["lens_q"]), max(recipe["lens_k"], default=0),
                           recipe["dim"], recipe["dim_v"])


def build(profile: Profile, run_seed: int) -> list[Case]:
    return build_cases("sdpa_varlen", SCENARIOS, profile, run_seed, label, size)


def offsets(lengths) -> np.ndarray:
    """(B + 1,) int32 cumulative offsets, 0 first (flash-attn's cu_seqlens)."""
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)


def pack(sequences: list[tuple[np.ndarray, ...]]) -> dict[str, np.ndarray]:
    """The packed inputs of (query (Lq, Hq, E), key (Lk, Hk, E), value (Lk, Hk, Ev))
    sequences: each array concatenated along L, their offsets as cu_seqlens."""
    q, k, v = (np.concatenate([s[i] for s in sequences]) for i in range(3))
    return {"query": q, "key": k, "value": v,
            "cu_seqlens_q": offsets([len(s[0]) for s in sequences]),
            "cu_seqlens_k": offsets([len(s[1]) for s in sequences])}


def make_inputs(case: Case) -> dict[str, Any]:
    r, rng, dtype = recipe_of(case), np.random.default_rng(case.seed), DTYPE_BY_NAME[case.dtype]
    hq, hk = r["heads"]
    tq, tk = sum(r["lens_q"]), sum(r["lens_k"])
    return {"query": rng.standard_normal((tq, hq, r["dim"])).astype(dtype),
            "key": rng.standard_normal((tk, hk, r["dim"])).astype(dtype),
            "value": rng.standard_normal((tk, hk, r["dim_v"])).astype(dtype),
            "cu_seqlens_q": offsets(r["lens_q"]), "cu_seqlens_k": offsets(r["lens_k"])}


def dense_sequences(inputs: dict[str, Any], options: dict[str, Any]):
    """Each non-empty sequence as (H, L, D) arrays."""
    cu_q, cu_k = inputs["cu_seqlens_q"], inputs["cu_seqlens_k"]
    for b in range(len(cu_q) - 1):
        rows, keys = slice(cu_q[b], cu_q[b + 1]), slice(cu_k[b], cu_k[b + 1])
        yield tuple(np.swapaxes(x, 0, 1) for x in (inputs["query"][rows], inputs["key"][keys],
                                                   inputs["value"][keys]))


def keyless_rows(inputs: dict[str, Any]) -> np.ndarray:
    """(total_q,) bool: the rows of sequences with no key."""
    cu_q, cu_k = inputs["cu_seqlens_q"], inputs["cu_seqlens_k"]
    return np.repeat(np.diff(cu_k) == 0, np.diff(cu_q))


SPEC = OpSpec("sdpa_varlen", build, make_inputs, arguments_for(POSITIONAL),
              expected_for(sdpa_varlen, POSITIONAL, dense_sequences, keyless_rows), outputs)
