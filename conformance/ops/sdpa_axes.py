"""The case space of op ``sdpa`` as declared axes: the one table of where real kernels break.

Each axis is a name and its values; each value has a token (used in case ids and the
coverage report), the value the generator reads, and a one-line reason: the bug class it
is there to catch (docs/real-bugs.md lists the reports behind them). Constraints drop the
combinations that cannot be built or would cost more than a case may; each says why.
``conformance.ops.sdpa_space`` turns this table into cases with a covering array:
every pair of values in ``quick``, every triple of the interacting axes (``TRIPLES``)
in ``ci``, more in ``full``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple


class Value(NamedTuple):
    """One value of an axis: ``token`` names it in ids, ``value`` is what is built."""

    token: str
    value: Any
    reason: str


class Axis(NamedTuple):
    name: str
    values: tuple[Value, ...]

    def token(self, index: int) -> str:
        return self.values[index].token


def _lengths() -> tuple[Value, ...]:
    why = {1: "decode: one query (Lq) or one key (Lk), softmax over a single entry",
           2: "speculative decode: a handful of rows",
           5: "small odd length, no tile is full",
           8: "top of the speculative-decode range",
           13: "prime: no tiling divides it",
           31: "prime just below a 32-wide tile",
           63: "one short of a 64-wide tile", 64: "exactly one 64-wide tile",
           65: "one past a tile: a 1-wide last tile (padding slots bugs)",
           127: "one short of 128", 128: "exactly two 64-tiles / one 128-tile",
           129: "one past 128: the last-tile bound is read",
           255: "one short of 256", 256: "exactly a 256-wide tile", 257: "one past 256"}
    return tuple(Value(str(n), n, reason) for n, reason in why.items())


RELATION = (
    Value("decode", "decode", "Lq = 1 < Lk: KV-cache decoding; bottom-right causal sees all"),
    Value("shorter", "lt", "1 < Lq < Lk: chunked prefill; the two causal alignments differ"),
    Value("square", "eq", "Lq = Lk: self-attention; both alignments agree"),
    Value("taller", "gt", "Lq > Lk (incl. Lk = 1): bottom-right leaves the first rows empty"),
)

HEADS = (
    Value("h1", (1, 1), "one head"), Value("h2", (2, 2), "Hq = Hk"),
    Value("h3", (3, 3), "Hq not a power of 2"),
    Value("g2k2", (4, 2), "GQA ratio 2, Hk = 2: tile vs repeat_interleave differ"),
    Value("g2k4", (8, 4), "GQA ratio 2 with Hk = 4"),
    Value("g4k2", (8, 2), "GQA ratio 4"), Value("g8k2", (16, 2), "GQA ratio 8"),
    Value("g3k2", (6, 2), "GQA ratio 3: a group that is not a power of 2"),
    Value("g7k2", (14, 2), "GQA ratio 7 (Qwen2.5's 28/4): head-in-group remap bugs"),
    Value("mqa4", (4, 1), "MQA: one key/value head"),
    Value("mqa6", (6, 1), "MQA with Hq not a power of 2"),
)

DIMS = tuple(Value(f"e{e}" + (f"v{ev}" if ev != e else ""), (e, ev), reason) for e, ev, reason in (
    (8, 8, "smallest head dim"), (16, 16, "small head dim"), (32, 32, "half a 64 tile"),
    (64, 64, "the common head dim"), (80, 80, "not a power of 2 (hard-coded 64 or 128 bugs)"),
    (96, 96, "not a power of 2, above 64"), (128, 128, "large head dim"),
    (256, 256, "largest supported head dim"), (64, 32, "Ev < E: V indexed with E"),
    (16, 48, "Ev > E"), (192, 128, "E = 192, Ev = 128 (MLA-like)")))

BATCH = (
    Value("b0", (), "no batch dim: 3-D (H, L, D) inputs"),
    Value("b1", (1,), "one batch entry"),
    Value("b3", (3,), "three entries: per-sample masks and lengths differ"),
    Value("b4", (4,), "B = 4"),
    Value("b2x2", (2, 2), "two batch dims"),
)

CAUSAL = (
    Value("none", None, "not causal"),
    Value("causal", "convention", "is_causal in the adapter's declared alignment"),
    Value("causalbr", "bottom_right", "is_causal, bottom-right alignment asked explicitly"),
)

# mask shapes, as the trailing dims of the mask; B = the batch dims, H = Hq
MASK_FORMS = (
    Value("none", None, "no mask"),
    # (Lk,) alone is left out: torch refuses a 1-D mask (IndexError), so no kernel with
    # torch's signature is held to it
    Value("unitk", ("1", "k"), "(1, Lk): broadcast over the query axis"),
    Value("qk", ("q", "k"), "(Lq, Lk): broadcast over batch and heads"),
    Value("hqk", ("h", "q", "k"), "3-D (H, Lq, Lk) against a 4-D or 5-D query"),
    Value("unitqk", ("1", "q", "k"), "3-D (1, Lq, Lk)"),
    Value("bk", ("b", "1", "1", "k"), "(B, 1, 1, Lk): per-sample key padding"),
    Value("bqk", ("b", "1", "q", "k"), "(B, 1, Lq, Lk): per-sample, shared by heads"),
    Value("full", ("b", "h", "q", "k"), "(B, H, Lq, Lk): every entry its own"),
)

MASK_DTYPES = (
    Value("nomask", None, "no mask to type"),
    Value("bool", "bool", "bool: True may attend"),
    Value("float", "float", "float: added after scaling; only -inf hides"),
)

PATTERNS = (
    Value("nomask", None, "no mask to fill"),
    Value("random", "random", "70 % visible at random, one visible key per row"),
    Value("pad", "padding", "key padding: sample b sees its first len_b keys, len_b differ"),
    Value("triltl", "tril_top_left", "explicit causal mask, top-left"),
    Value("trilbr", "tril_bottom_right", "explicit causal mask, bottom-right (1 < Lq < Lk)"),
    Value("tiles", "tiles", "block-sparse: whole 64-key tiles hidden, incl. first and last"),
    Value("docs", "docs", "block-diagonal: packed documents, no cross-document keys"),
    Value("empty", "empty", "rows with no visible key (policy: fully_masked)"),
)

FILLS = (
    Value("nofill", None, "bool or no mask: nothing to fill"),
    Value("inf", -math.inf, "-inf hides the key"),
    Value("tenk", -1e4, "-1e4: a finite bias (fp16-safe sentinel), not a hidden key"),
    Value("billion", -1e9, "-1e9: the usual finite sentinel"),
    Value("finfomin", "finfo_min", "finfo(dtype).min: overflows to -inf when added"),
)

SCALES = (
    Value("default", None, "1/sqrt(E) by default"),
    Value("zero", 0.0, "scale 0: uniform weights over visible keys"),
    Value("tiny", 1e-3, "tiny scale: nearly uniform weights"),
    Value("large", 2.0, "large scale: sharp rows"),
    Value("explicit", "explicit", "an explicit scale equal to the default 1/sqrt(E)"),
)

VALUE_DISTRIBUTIONS = (
    Value("normal", "normal", "zero-mean normal q, k, v"),
    Value("positive", "positive", "values with mean 3: accumulation error shows"),
    Value("heavy", "heavy", "heavy-tailed (Student t, 3 dof): a few large entries"),
    Value("peaked", "peaked", "q and k x6: one key dominates each row"),
    Value("ties", "ties", "q and k in {-1, 0, 1}: tied logits"),
    Value("selflarge", "selflarge", "key = query with |q|^2 > 65504: 16-bit q.k overflows"),
)

LAYOUTS = (
    Value("contiguous", "contiguous", "C-contiguous q, k, v"),
    Value("blhd", "blhd", "(B, L, H, D) arrays viewed as (B, H, L, D)"),
    Value("vstrided", "vstrided", "only V is a transposed view"),
    Value("negstride", "negstride", "negative strides along the sequence axis"),
    Value("stridezero", "stridezero", "stride-0 broadcast key/value (batch or heads)"),
    Value("offset", "offset", "views starting one element into their buffer"),
    Value("laststride", "laststride", "stride(-1) = 2: the innermost dim is not contiguous"),
)

DTYPES = tuple(Value(d, d, reason) for d, reason in (
    ("float64", "held to float64 accuracy"), ("float32", "the common dtype"),
    ("float16", "16-bit: overflow at 65504"), ("bfloat16", "8-bit mantissa")))

AXES: tuple[Axis, ...] = (
    Axis("len_q", _lengths()), Axis("len_k", _lengths()), Axis("relation", RELATION),
    Axis("causal", CAUSAL), Axis("mask", MASK_FORMS), Axis("mask_dtype", MASK_DTYPES),
    Axis("pattern", PATTERNS), Axis("fill", FILLS), Axis("heads", HEADS), Axis("dims", DIMS),
    Axis("batch", BATCH), Axis("scale", SCALES), Axis("values", VALUE_DISTRIBUTIONS),
    Axis("layout", LAYOUTS), Axis("dtype", DTYPES),
)
AXIS = {axis.name: axis for axis in AXES}

# the axes that interact: all their triples in ci (docs/real-bugs.md: these combinations are
# where the reported bugs needed three values at once)
TRIPLES: tuple[tuple[str, str, str], ...] = (
    ("relation", "causal", "mask"),  # lengths x causal/alignment x masks
    ("mask", "batch", "heads"),  # per-sample masks, broadcast forms, GQA
    ("dtype", "len_k", "values"),  # accumulation length x precision x distribution
)
FULL_TRIPLES = (
    *TRIPLES,
    ("len_q", "len_k", "causal"), ("mask", "pattern", "fill"), ("layout", "dtype", "heads"),
)
# most work one case may do: batch x Hq x Lq x Lk x (E + Ev) multiply-adds
WORK_CAP = 1 << 21
# patterns that need a query axis in the mask's shape
ROW_PATTERNS = ("tril_top_left", "tril_bottom_right", "docs", "empty")


class Constraint(NamedTuple):
    """``holds(row)`` for a row holding at least ``fields`` (values, not tokens)."""

    fields: tuple[str, ...]
    holds: Callable[[dict[str, Any]], bool]
    reason: str


def relation_of(len_q: int, len_k: int) -> str:
    if len_q == len_k:
        return "eq"
    if len_q > len_k:
        return "gt"
    return "decode" if len_q == 1 else "lt"


def work(r: dict[str, Any]) -> int:
    """batch x Hq x Lq x Lk x (E + Ev): the multiply-adds of one case."""
    return (math.prod(r["batch"]) * r["heads"][0] * r["len_q"] * r["len_k"]
            * sum(r["dims"]))


def _no_mask(r: dict[str, Any]) -> bool:
    return r["mask"] is None


CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint(("len_q", "len_k", "relation"),
               lambda r: relation_of(r["len_q"], r["len_k"]) == r["relation"],
               "relation is Lq vs Lk, named so that its triples can be declared"),
    Constraint(("mask", "mask_dtype"), lambda r: _no_mask(r) == (r["mask_dtype"] is None),
               "a mask has a dtype, no mask has none"),
    Constraint(("mask", "pattern"), lambda r: _no_mask(r) == (r["pattern"] is None),
               "a mask has a pattern, no mask has none"),
    Constraint(("mask_dtype", "fill"), lambda r: (r["mask_dtype"] == "float") == (
        r["fill"] is not None), "only a float mask has a fill value"),
    Constraint(("mask", "pattern"), lambda r: r["pattern"] not in ROW_PATTERNS
               or "q" in r["mask"], "row patterns need the query axis in the mask"),
    Constraint(("mask", "pattern"), lambda r: r["pattern"] != "padding" or r["mask"] is None
               or "q" not in r["mask"] or "b" in r["mask"],
               "padding on a query-axis mask is only per-sample; (Lk,) forms cover the rest"),
    Constraint(("mask", "batch"), lambda r: r["mask"] is None or "b" not in r["mask"]
               or len(r["batch"]) >= 1, "(B, ...) masks need a batch dim"),
    Constraint(("mask", "batch"), lambda r: r["mask"] != ("b", "1", "1", "k")
               or math.prod(r["batch"]) >= 2, "per-sample padding needs 2+ samples to differ"),
    Constraint(("fill", "dtype"), lambda r: r["dtype"] != "float16"
               or r["fill"] not in (-1e9, "finfo_min"),
               "float16: -1e9 is -inf, and finfo.min plus a score overflows"),
    Constraint(("values", "relation"), lambda r: r["values"] != "selflarge"
               or r["relation"] == "eq", "key = query needs Lq = Lk"),
    Constraint(("values", "heads"), lambda r: r["values"] != "selflarge"
               or r["heads"][0] == r["heads"][1], "key = query needs Hq = Hk"),
    Constraint(("values", "dims"), lambda r: r["values"] != "selflarge" or r["dims"][0] >= 64,
               "|q|^2 > 65504 with scaled logits < 65504 needs E >= 64"),
    Constraint(("values", "scale"), lambda r: r["values"] != "selflarge"
               or r["scale"] in (None, "explicit", 0.0, 1e-3),
               "a large scale on overflowing self-attention overflows the scaled logits too"),
    Constraint(("layout", "batch", "heads"), lambda r: r["layout"] != "stridezero"
               or math.prod(r["batch"]) >= 2 or r["heads"][1] >= 2,
               "a stride-0 broadcast needs an axis of size 2+ to broadcast"),
    Constraint(("len_q", "len_k", "dims", "heads", "batch"), lambda r: work(r) <= WORK_CAP,
               f"budget: at most {WORK_CAP} multiply-adds per case"),
)

# the extension options, each crossed with every value of every axis (one case per value at
# least, in ``conformance.ops.sdpa_space.option_cases``); a case needs the option's feature
OPTIONS: tuple[Axis, ...] = (
    Axis("window", (
        Value("windowboth", (3, 1), "window (3, 1): both bounds, off-by-one on each side"),
        Value("windowleft", (16, 0), "sliding window (16, 0): a long left, none right"))),
    Axis("softcap", (
        Value("softcap", 2.0, "softcap 2: tanh bends every logit; must precede the mask"),
        Value("softcapwide", 20.0, "softcap 20: only large logits bend"))),
    Axis("alibi", (
        Value("alibi", "geometric", "ALiBi slopes 2^(-8(h+1)/Hq), Hq of the case"),)),
    Axis("sinks", (
        Value("sinks", "spread", "one sink logit per head, from -1 to 1"),)),
)
