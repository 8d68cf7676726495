"""Op ``paged_attention``: attention over a paged KV cache (vLLM / FlashInfer / flash-attn).

Cases: decode (Lq = 1) and chunked prefill (Lq = 4, causal bottom-right); page
sizes 1, 7 (not a power of 2), 16 and 128 with sequence lengths at page
boundaries and ± 1; block tables shuffled (pages in random pool order), reversed,
shared between sequences (prefix caching) and padded (−1, or an out-of-pool
index, past each sequence's last page); partially filled last pages and spare
pages holding NaN, inf or stale keys, which must never reach the output; GQA
ratios 2 and 3; the HND page layout; window; lse; empty sequences; in ci and
full, 256 decode sequences of up to 2k keys.

Page permutation invariance and "garbage in unused slots changes nothing" are
checked through the inputs: every case's pool is shuffled and its unused slots
hold garbage, and the reference (``reference/paged.py``) reads neither,
so a kernel that depends on page order or reads past seq_len fails the case. The
``page_permutation`` and ``unused_slots`` properties (checks/property_bodies.py) check
both again without the reference, the adapter against itself on layouts from
``paged_layout``.
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
from conformance.strategies import shared_prefix_table
from reference.paged import gather_sequence, paged_attention, pages_needed

POSITIONAL = ("query", "key_pages", "value_pages", "block_table", "seq_lens")
GARBAGE = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}


def _pool(lens: list[int], page: int, lq: int = 1, heads=(4, 2), dim=16, table="shuffled",
          garbage="nan", pad=-1, layout="NHD", shared_pages=0):
    return {"lens": lens, "page": page, "lq": lq, "heads": heads, "dim": dim, "table": table,
            "garbage": garbage, "pad": pad, "layout": layout, "shared_pages": shared_pages}


def long_decode_lens() -> list[int]:
    """256 lengths in [1, 2048], page-boundary values mixed in."""
    return [((97 * i) % 2048) + 1 if i % 8 else 16 * (i % 64 + 1) for i in range(256)]


CAUSAL = {"is_causal": True, "causal_alignment": "bottom_right"}
SCENARIOS = (
    Scenario("decode-page16", _pool([1, 15, 16, 17, 31, 32, 33, 100], 16),
             {"enable_gqa": True}, core=True),
    Scenario("decode-page1", _pool([1, 2, 5, 9], 1), {"enable_gqa": True}),
    Scenario("decode-page128", _pool([1, 127, 128, 129, 300], 128), {"enable_gqa": True}),
    Scenario("decode-page7", _pool([6, 7, 8, 14, 15, 50], 7, garbage="inf"),
             {"enable_gqa": True}, core=True),
    Scenario("decode-empty-sequences", _pool([0, 3, 0, 9], 4), {"enable_gqa": True}),
    Scenario("decode-identity-table-padding", _pool([5, 12, 3], 4, table="identity",
                                                     pad=10**6, garbage="stale"),
             {"enable_gqa": True}),
    Scenario("decode-reversed-table", _pool([20, 33, 9], 4, table="reversed",
                                            garbage="-inf"), {"enable_gqa": True}),
    Scenario("decode-shared-prefix", _pool([40, 37, 50], 8, shared_pages=4),
             {"enable_gqa": True}, core=True),
    Scenario("decode-mha", _pool([3, 16, 29], 16, heads=(2, 2))),
    Scenario("decode-gqa-ratio-3", _pool([10, 17, 33], 16, heads=(6, 2)),
             {"enable_gqa": True}),
    Scenario("decode-hnd-layout", _pool([9, 16, 23], 8, layout="HND"),
             {"enable_gqa": True, "page_layout": "HND"}),
    Scenario("decode-window", _pool([5, 20, 40], 8), {"enable_gqa": True, "window": (8, 0)}),
    Scenario("decode-lse", _pool([0, 7, 16, 30], 8), {"enable_gqa": True, "return_lse": True}),
    Scenario("decode-scale", _pool([4, 17], 16), {"enable_gqa": True, "scale": 0.37}),
    Scenario("prefill-chunk-causal", _pool([4, 9, 16, 33], 8, lq=4),
             {"enable_gqa": True, **CAUSAL}, core=True),
    Scenario("prefill-chunk-noncausal", _pool([4, 9, 16], 16, lq=3), {"enable_gqa": True}),
    Scenario("decode-256-sequences", _pool(long_decode_lens(), 16, heads=(8, 2), dim=64),
             {"enable_gqa": True}, profiles=("ci", "full"), dtypes=LONG_DTYPES),
)


def label(r: dict[str, Any]) -> str:
    hq, hk = r["heads"]
    heads = f"h{hq}" + (f"/{hk}" if hk != hq else "")
    return (f"n{len(r['lens'])}-q{r['lq']}-k{sum(r['lens'])}-page{r['page']}-{heads}-"
            f"e{r['dim']}")


def size(r: dict[str, Any]) -> AttentionShapes:
    hq, hk = r["heads"]
    return AttentionShapes((len(r["lens"]),), hq, hk, r["lq"], max(r["lens"]), r["dim"], r["dim"])


def build(profile: Profile, run_seed: int) -> list[Case]:
    return build_cases("paged_attention", SCENARIOS, profile, run_seed, label, size)


def _table(r: dict[str, Any], rng) -> tuple[np.ndarray, int]:
    """(block_table, num_pages): each sequence's own pages from a pool of spare + used ones;
    the first ``shared_pages`` of every sequence are sequence 0's (prefix caching)."""
    counts = [pages_needed(n, r["page"]) for n in r["lens"]]
    shared = r["shared_pages"]
    own = [c - shared if b else c for b, c in enumerate(counts)]
    num_pages = sum(own) + 3  # three spare pages, all garbage
    ids = {"shuffled": rng.permutation(num_pages), "identity": np.arange(num_pages),
           "reversed": np.arange(num_pages)[::-1]}[r["table"]]
    return shared_prefix_table(counts, shared, ids, max(counts) + 2, r["pad"]), num_pages


def read_slots(num_pages: int, page: int, table: np.ndarray, lens) -> np.ndarray:
    """(num_pages, page) bool: the slots some sequence reads (key t of sequence b is in page
    ``table[b, t // page]``, slot ``t % page``); every other slot is never read."""
    read = np.zeros((num_pages, page), bool)
    for b, n in enumerate(lens):
        t = np.arange(int(n))
        read[table[b, t // page], t % page] = True
    return read


def _spoil_unused(pages: np.ndarray, table: np.ndarray, lens: list[int], garbage, rng) -> None:
    """Garbage in every slot no sequence reads: spare pages and the tails of last pages."""
    read = read_slots(pages.shape[0], pages.shape[1], table, lens)
    if garbage == "stale":
        pages[~read] = (rng.standard_normal(pages.shape) * 30)[~read]
    else:
        pages[~read] = GARBAGE[garbage]


def paged_layout(keys: list[np.ndarray], values: list[np.ndarray], page: int, *,
                 shared_pages: int = 0, spare: int = 0, rng=None, pad: int | str = -1
                 ) -> dict[str, np.ndarray]:
    """key_pages, value_pages (NHD, zeros where no key is), block_table and ``unread`` (the
    slots no sequence reads) holding each sequence's (L, H, D) keys and values.

    Pages in pool order: sequence 0's, sequence 1's own (its first ``shared_pages`` are
    sequence 0's), …, then ``spare`` pages; ``rng`` shuffles the pool (renumbering the table),
    else the table is the identity. Each row is padded with ``pad`` after its last page:
    an int, or "spare" for the first spare page (a real page, of garbage where the caller
    puts it there).
    """
    counts = [pages_needed(len(k), page) for k in keys]
    own = [c - shared_pages if b else c for b, c in enumerate(counts)]
    num_pages = sum(own) + spare
    ids = np.arange(num_pages) if rng is None else rng.permutation(num_pages)
    if pad == "spare":
        pad = int(ids[sum(own)])
    table = shared_prefix_table(counts, shared_pages, ids, max(counts, default=0) + 1, int(pad))
    pools = []
    for seqs in (keys, values):
        pool = np.zeros((num_pages, page, *seqs[0].shape[1:]), seqs[0].dtype)
        for b, x in enumerate(seqs):
            for i in range(counts[b]):
                chunk = x[i * page:(i + 1) * page]
                pool[table[b, i], :len(chunk)] = chunk
        pools.append(pool)
    unread = ~read_slots(num_pages, page, table, [len(k) for k in keys])
    return {"key_pages": pools[0], "value_pages": pools[1], "block_table": table,
            "unread": unread}


def make_inputs(case: Case) -> dict[str, Any]:
    r, rng, dtype = recipe_of(case), np.random.default_rng(case.seed), DTYPE_BY_NAME[case.dtype]
    (hq, hk), e, page = r["heads"], r["dim"], r["page"]
    table, num_pages = _table(r, rng)
    key_pages = rng.standard_normal((num_pages, page, hk, e))
    value_pages = rng.standard_normal((num_pages, page, hk, e))
    for pages in (key_pages, value_pages):
        _spoil_unused(pages, table, list(r["lens"]), r["garbage"], rng)
    if r["layout"] == "HND":
        key_pages, value_pages = (np.ascontiguousarray(np.swapaxes(p, 1, 2))
                                  for p in (key_pages, value_pages))
    return {"query": rng.standard_normal((len(r["lens"]), r["lq"], hq, e)).astype(dtype),
            "key_pages": key_pages.astype(dtype), "value_pages": value_pages.astype(dtype),
            "block_table": table, "seq_lens": np.asarray(r["lens"], dtype=np.int32)}


def dense_sequences(inputs: dict[str, Any], options: dict[str, Any]):
    """Each sequence's queries, gathered keys and values as (H, L, D) arrays."""
    kp, vp = inputs["key_pages"], inputs["value_pages"]
    if options.get("page_layout") == "HND":
        kp, vp = np.swapaxes(kp, 1, 2), np.swapaxes(vp, 1, 2)
    for b, n in enumerate(inputs["seq_lens"]):
        keys = gather_sequence(kp, inputs["block_table"][b], n)
        values = gather_sequence(vp, inputs["block_table"][b], n)
        yield tuple(np.swapaxes(x, 0, 1) for x in (inputs["query"][b], keys, values))


def keyless_rows(inputs: dict[str, Any]) -> np.ndarray:
    """(B, Lq) bool: the rows of sequences with no key."""
    return np.broadcast_to((inputs["seq_lens"] == 0)[:, None], inputs["query"].shape[:2])


SPEC = OpSpec("paged_attention", build, make_inputs, arguments_for(POSITIONAL),
              expected_for(paged_attention, POSITIONAL, dense_sequences, keyless_rows), outputs)
