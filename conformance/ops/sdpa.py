"""Op ``sdpa``: the case matrix, inputs, call and expected outputs.

Scenarios × shapes × dtypes. Shapes include 1, 7, 113 and 203, Lq ≠ Lk both
ways, Ev ≠ E, 0–2 batch dims, GQA and long sequences (the profile's). Every mask kind:
bool, float (in the query's dtype), broadcast, fully-masked rows, causal in
both alignments, and the extension features (window, softcap, ALiBi, sinks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conformance.adapters.frameworks import DTYPE_BY_NAME, OutputTypeError
from conformance.cases import AttentionShapes, Case, make_case, unique_cases
from conformance.judging import empty_rows
from conformance.judging.tolerance import Conditioning, ulp
from conformance.ops import sdpa_draw, sdpa_space
from conformance.ops.spec import Expected, OpSpec, require
from conformance.profiles import Profile
from conformance.vocabulary import DTYPES
from reference import blocked_sdpa
from reference import sdpa as reference_sdpa

S = AttentionShapes
ONE = S((), 1, 1, 1, 1, 8, 8)
SQUARE = S((2,), 2, 2, 7, 7, 16, 16)
WIDE = S((2, 3), 2, 2, 5, 7, 8, 4)  # Lq < Lk, Ev ≠ E, two batch dims
TALL = S((1,), 2, 2, 7, 5, 16, 16)  # Lq > Lk
ODD = S((1,), 3, 3, 113, 113, 32, 32)
ODDER = S((), 1, 1, 203, 203, 64, 64)
GQA = S((2,), 8, 2, 5, 7, 16, 16)
GQA_ODD = S((1,), 6, 3, 7, 7, 8, 8)


@dataclass(frozen=True)
class Scenario:
    name: str
    shapes: tuple[AttentionShapes, ...]
    options: dict[str, Any] = field(default_factory=dict)
    mask: str = "none"  # none|bool|float|bool-bcast|float-bcast|bool-empty-rows|float-empty-rows
    features: tuple[str, ...] = ()
    core: bool = False  # run in low precision even in the quick profile
    dtypes: tuple[str, ...] | None = None  # None: the profile's


# Conditioning cases (docs/tolerance.md): logits and finite biases of magnitude 1e2 to 1e9,
# O(1) spread within a row, so every logit carries a rounding error of about u·|s| that
# softmax passes on.


def resolving(offset: float) -> tuple[str, ...]:
    """The dtypes whose numbers near ``offset`` are at most 1/16 apart, so a bias of that
    size keeps a row's O(1) spread. Elsewhere (float32 at 1e9: spacing 64; bfloat16 at 1e2:
    0.5) rounding the mask alone moves every logit by more than the spread: any convex
    combination of the values is then an honest answer and the case could catch nothing."""
    return tuple(d for d in DTYPES if ulp(d, offset) <= 1 / 16)


def biased(name: str, offset: float) -> Scenario:
    return Scenario(name, (SQUARE,), {"mask_offset": offset}, mask="float",
                    features=("float_mask",), dtypes=resolving(offset))


NO_FLOAT16 = ("float64", "float32", "bfloat16")
CONDITIONING_SCENARIOS = (
    biased("bias-minus-hundred", -1e2),
    biased("bias-plus-ten-thousand", 1e4),
    biased("bias-minus-billion", -1e9),
    biased("bias-plus-billion", 1e9),
    # the spread grows with the logits here: one-hot rows, representable up to float16's max
    Scenario("logits-hundred", (SQUARE,), {"input_scale": 10.0}),
    Scenario("logits-hundred-thousand", (SQUARE,), {"input_scale": 300.0}, dtypes=NO_FLOAT16),
)

SCENARIOS = (
    Scenario("plain", (ONE, SQUARE, WIDE, TALL, ODD, ODDER), core=True),
    Scenario("bool-mask", (SQUARE, WIDE, TALL), mask="bool", features=("bool_mask",), core=True),
    Scenario("float-mask", (SQUARE, WIDE), mask="float", features=("float_mask",), core=True),
    Scenario("bool-mask-bcast", (WIDE,), mask="bool-bcast", features=("bool_mask",)),
    Scenario("float-mask-bcast", (WIDE,), mask="float-bcast", features=("float_mask",)),
    # a finite bias far below 0 is still a bias (only -inf hides): every logit near -1e5
    biased("float-mask-far-negative", -1e5),
    *CONDITIONING_SCENARIOS,
    Scenario("causal", (SQUARE, WIDE, TALL, ODD), {"is_causal": True}, features=("causal",),
             core=True),
    Scenario("causal-bottom-right", (WIDE, TALL),
             {"is_causal": True, "causal_alignment": "bottom_right"},
             features=("causal", "bottom_right")),
    Scenario("scale", (SQUARE, WIDE), {"scale": 0.37}, features=("scale",)),
    Scenario("gqa", (GQA, GQA_ODD), {"enable_gqa": True}, features=("gqa",), core=True),
    Scenario("gqa-causal", (GQA,), {"enable_gqa": True, "is_causal": True},
             features=("gqa", "causal")),
    Scenario("mask-causal", (WIDE,), {"is_causal": True}, mask="bool",
             features=("bool_mask", "causal", "mask_with_causal")),
    # a mask that broadcasts over the query axis, (Hq, 1, Lk), with is_causal: a kernel that
    # reads Lq from the mask's shape builds a 1-row causal band (onnx.reference's Attention)
    Scenario("mask-bcast-query-causal", (WIDE, TALL), {"is_causal": True}, mask="float-bcast",
             features=("float_mask", "causal", "mask_with_causal")),
    Scenario("empty-rows-bool", (SQUARE,), mask="bool-empty-rows", features=("bool_mask",)),
    Scenario("empty-rows-float", (SQUARE,), mask="float-empty-rows", features=("float_mask",)),
    Scenario("large-logits", (SQUARE,), {"input_scale": 40.0}, core=True),
    Scenario("window", (S((1,), 2, 2, 13, 13, 8, 8),), {"window": (3, 1)}, features=("window",)),
    # a KV-cache decode step: one query at the end of a longer cache (mistral.rs#2094,
    # tokenspeed#578: decode paths that drop the window or keep one key too few)
    Scenario("window-decode", (S((1,), 2, 2, 1, 13, 8, 8),),
             {"window": (3, 0), "causal_alignment": "bottom_right"},
             features=("window", "bottom_right")),
    # a mask over more than 512 keys, hiding some past 512 (vllm-ascend#15503: a fused kernel
    # that read the mask only up to key 512)
    Scenario("bool-mask-long-keys", (S((), 1, 1, 4, 600, 16, 16),), mask="bool",
             features=("bool_mask",)),
    Scenario("softcap", (SQUARE,), {"softcap": 0.8, "input_scale": 3.0}, features=("softcap",)),
    Scenario("alibi", (SQUARE,), {"alibi_slopes": (0.5, 0.25)}, features=("alibi",)),
    Scenario("sinks", (SQUARE,), {"sinks": (0.3, -1.0)}, features=("sinks",)),
)

# harness-only options: they shape the inputs, they are not passed to the adapter
INPUT_OPTIONS = ("input_scale", "mask", "mask_offset", *sdpa_draw.DRAW_OPTIONS)


def long_shapes(length: int) -> AttentionShapes:
    return S((), 2, 2, length, length, 64, 64)


def long_scenarios(profile: Profile) -> tuple[Scenario, ...]:
    """The profile's long causal case, and its single-head longest one (float32 only: a
    kernel that materialises Lq × Lk needs 4 GiB for it, not 8)."""
    long = Scenario("long-causal", (long_shapes(profile.long_length),), {"is_causal": True},
                    features=("causal",), core=True)
    if profile.longest_length is None:
        return (long,)
    longest = S((), 1, 1, profile.longest_length, profile.longest_length, 64, 64)
    return (long, Scenario("longest-causal-one-head", (longest,), {"is_causal": True},
                           features=("causal",), core=True, dtypes=("float32",)))


def build_cases(profile: Profile, run_seed: int) -> list[Case]:
    long = long_scenarios(profile)
    cases = []
    for scenario in (*SCENARIOS, *long):
        dtypes = profile.dtypes if (scenario.core or not profile.lowp_scenarios_only_core) else (
            tuple(d for d in profile.dtypes if d in ("float64", "float32")))
        if scenario.dtypes is not None:
            dtypes = tuple(d for d in dtypes if d in scenario.dtypes)
        # a sequence longer than the profile's long length belongs to a profile that reaches it
        reached = [sh for sh in scenario.shapes if scenario in long
                   or max(sh.len_q, sh.len_k) <= profile.long_length]
        for shapes in reached:
            for dtype in dtypes:
                options = {**scenario.options, "mask": scenario.mask}
                cases.append(make_case("sdpa", scenario.name, shapes.label, dtype, run_seed,
                                       options, scenario.features, shapes))
    # the case space of conformance/ops/sdpa_axes.py as a covering array (ops/sdpa_space.py)
    cases += sdpa_space.generated_cases(profile.name, profile.dtypes, run_seed)
    return unique_cases(cases)


def _mask(kind: str, shapes: AttentionShapes, rng, dtype, offset: float) -> np.ndarray | None:
    full = (*shapes.batch, shapes.heads_q, shapes.len_q, shapes.len_k)
    if kind == "none":
        return None
    shape = {"bool-bcast": (shapes.len_q, shapes.len_k),
             "float-bcast": (shapes.heads_q, 1, shapes.len_k)}.get(kind, full)
    visible = rng.random(shape) < 0.7
    # every row keeps one visible key unless the scenario is about empty rows
    keep = rng.integers(0, shapes.len_k, size=shape[:-1])
    np.put_along_axis(visible, keep[..., None], True, axis=-1)
    if kind.endswith("empty-rows"):
        visible[..., 1, :] = False
        visible[..., -1, :] = False
    if kind.startswith("bool"):
        return visible
    bias = rng.standard_normal(shape) + offset
    return np.where(visible, bias, -np.inf).astype(dtype)


def make_inputs(case: Case) -> dict[str, Any]:
    """query/key/value (and attn_mask) in the case dtype, from the case's own seed."""
    if case.option("values") is not None:  # a generated case (conformance.ops.sdpa_space)
        return sdpa_draw.make_inputs(case)
    rng = np.random.default_rng(case.seed)
    sh, dtype = case.shapes, DTYPE_BY_NAME[case.dtype]
    if sh is None:
        raise ValueError(f"an sdpa case needs shapes: {case.id}")
    scale = case.option("input_scale", 1.0)
    q = rng.standard_normal((*sh.batch, sh.heads_q, sh.len_q, sh.dim)) * scale
    k = rng.standard_normal((*sh.batch, sh.heads_kv, sh.len_k, sh.dim)) * scale
    v = rng.standard_normal((*sh.batch, sh.heads_kv, sh.len_k, sh.dim_v))
    inputs = {"query": q.astype(dtype), "key": k.astype(dtype), "value": v.astype(dtype)}
    mask = _mask(case.option("mask", "none"), sh, rng, dtype, case.option("mask_offset", 0.0))
    if mask is not None:
        inputs["attn_mask"] = mask
    return inputs


def call_kwargs(binding, case: Case) -> dict[str, Any]:
    """The keyword arguments this case sends: only the parameters the adapter accepts."""
    require(binding, case)
    kwargs = {k: v for k, v in case.options if k not in INPUT_OPTIONS}
    if "dropout_p" in binding.params:
        kwargs["dropout_p"] = 0.0  # explicit: a kernel must not drop anything at p = 0
    for key in ("alibi_slopes", "sinks"):
        if key in kwargs:
            kwargs[key] = np.asarray(kwargs[key], dtype=DTYPE_BY_NAME[case.dtype])
    return kwargs


def arguments(binding, inputs: dict[str, Any], case: Case) -> tuple[list, dict[str, Any]]:
    """(args, kwargs) in NumPy; the invoker converts them to the adapter's framework."""
    kwargs = call_kwargs(binding, case)
    if "attn_mask" in inputs:
        kwargs["attn_mask"] = inputs["attn_mask"]
    return [inputs[n] for n in ("query", "key", "value")], kwargs


def reference_kwargs(case: Case, conventions: dict[str, Any]) -> dict[str, Any]:
    """The case's options for the reference, under the adapter's causal alignment unless
    the case names one (``fully_masked`` is chosen per row: see ``expected``)."""
    kwargs = {k: v for k, v in case.options if k not in INPUT_OPTIONS}
    kwargs.setdefault("causal_alignment", conventions["causal_alignment"])
    for key in ("alibi_slopes", "sinks"):
        if key in kwargs:
            kwargs[key] = np.asarray(kwargs[key], dtype=np.float64)
    return kwargs


# Above this many scores (batch · Hq · Lq · Lk: 32 MiB of float64) the expected output
# comes from reference.blocked_sdpa: the same numbers as the formula (≤ 1e-13 relative,
# tests/reference_variants/test_ref_blocked_path.py) without holding Lq × Lk, on every core.
BLOCKED_ABOVE = 1 << 22


def run_reference(query: np.ndarray, key: np.ndarray, value: np.ndarray,
                  **kwargs: Any) -> Any:
    """``reference.sdpa(query, key, value, **kwargs)``, or its blocked form for long cases
    (more than BLOCKED_ABOVE scores): the reference is the formula; choosing the fast exact
    path is the harness's business."""
    hq, lq = query.shape[-3:-1]
    batch = np.broadcast_shapes(query.shape[:-3], key.shape[:-3])
    if math.prod((*batch, hq, lq, key.shape[-2])) > BLOCKED_ABOVE:
        return blocked_sdpa(query, key, value, **kwargs)
    return reference_sdpa(query, key, value, **kwargs)


def _per_query_head(per_kv_head: np.ndarray, heads_q: int) -> np.ndarray:
    """(..., Hkv, 1, 1) → (..., Hq, 1, 1): each query head gets its key/value head's value
    (grouped-query attention repeats kv heads, ``repeat_interleave``, as the reference)."""
    heads_kv = per_kv_head.shape[-3]
    return per_kv_head if heads_kv == heads_q else np.repeat(per_kv_head, heads_q // heads_kv,
                                                             axis=-3)


def _finite_or_zero(x: np.ndarray) -> np.ndarray:
    """x with its NaN and inf entries 0: a non-finite input leaves its row to the same-dtype
    rule (and to the non-finite comparison), it does not make any bound infinite."""
    return np.where(np.isfinite(x), x, 0.0)


def row_conditioning_of(qkv: list[np.ndarray], lse: np.ndarray, mask64,
                        kwargs: dict[str, Any]) -> Conditioning:
    """The magnitudes the tolerance's conditioning term needs (``Conditioning``), per query
    row: arrays of shape (..., Hq, Lq, 1), broadcastable against the output.

    A row's max logit m lies in [lse − ln Lk, lse], so |m| ≤ |lse| + ln Lk (logits far
    below m carry weights too small for their rounding to matter). Q_i = scale · ‖q_i‖ ·
    max‖k_j‖ over its head's keys, V_i = max|v| over its head's values. The weighted
    spread of the values, σ = sqrt(Σ p v² − (Σ p v)²), comes from one reference call on
    [v, v²], its largest over the row's value columns. A row with no visible key (lse = −inf)
    has M = ln Lk and σ = 0: its value is the fully_masked policy's, not a weighted sum.
    """
    q, k, v = qkv
    e, lk, heads_q = q.shape[-1], k.shape[-2], q.shape[-3]
    scale = 1.0 / np.sqrt(e) if kwargs.get("scale") is None else abs(float(kwargs["scale"]))
    moments = run_reference(q, k, np.concatenate([v, v * v], axis=-1), attn_mask=mask64,
                            fully_masked="zeros", **kwargs)
    mean, square = moments[..., :v.shape[-1]], moments[..., v.shape[-1]:]
    spread = np.sqrt(np.maximum(square - mean * mean, 0.0))
    key_norm = (np.linalg.norm(k, axis=-1).max(axis=-1) if lk else
                np.zeros(k.shape[:-2]))[..., None, None]
    value_max = (np.abs(v).max(axis=(-2, -1)) if v.size else
                 np.zeros(v.shape[:-2]))[..., None, None]
    return Conditioning(
        logit_magnitude=_finite_or_zero(np.abs(lse))[..., None] + float(np.log(max(lk, 1))),
        dot_magnitude=_finite_or_zero(scale * np.linalg.norm(q, axis=-1)[..., None]
                                      * _per_query_head(key_norm, heads_q)),
        value_spread=_finite_or_zero(spread).max(axis=-1, keepdims=True) if spread.shape[-1]
        else np.zeros((*spread.shape[:-1], 1)),
        value_magnitude=_finite_or_zero(_per_query_head(value_max, heads_q)),
        dim=e, keys=lk)


def conditioning_of(qkv: list[np.ndarray], lse: np.ndarray, mask64, kwargs: dict[str, Any]
                    ) -> Conditioning:
    """``row_conditioning_of``'s magnitudes, each its largest over the rows: one bound for
    the whole output (the packed ops merge these over their sequences)."""
    return row_conditioning_of(qkv, lse, mask64, kwargs).largest()


def expected(inputs: dict[str, Any], case: Case, conventions: dict[str, Any]) -> list[Expected]:
    """The reference under the adapter's conventions: each row with no visible key follows
    the ``fully_masked`` policy of what hid it (``conformance.judging.empty_rows``); rows held to
    ``any`` are ignored."""
    kwargs = reference_kwargs(case, conventions)
    q, k, v = (inputs[n] for n in ("query", "key", "value"))
    mask = inputs.get("attn_mask")
    wide = [x.astype(np.float64) for x in (q, k, v)]
    mask64 = mask if mask is None or mask.dtype == bool else mask.astype(np.float64)

    def run64(policy: str) -> np.ndarray:
        return run_reference(*wide, attn_mask=mask64, fully_masked=policy, **kwargs)

    _, lse = run_reference(*wide, attn_mask=mask64, return_lse=True, **kwargs)
    rows = empty_rows.find(run64, lse, k.shape[-2], mask, is_causal=kwargs.get("is_causal", False),
                           window=kwargs.get("window"), alignment=kwargs["causal_alignment"])
    kinds = rows.kinds if rows is not None else np.full(lse.shape, "", object)
    declared = conventions["fully_masked"]
    ref64, ignore = empty_rows.reference_rows(run64, kinds, declared)
    if case.dtype == "float64":
        ref_lowp = ref64
    else:
        ref_lowp, _ = empty_rows.reference_rows(
            lambda policy: run_reference(q, k, v, attn_mask=mask, compute_dtype=q.dtype,
                                         fully_masked=policy, **kwargs), kinds, declared)
    return [Expected("output", ref64, ref_lowp, q.dtype, ignore, rows,
                     row_conditioning_of(wide, lse, mask64, kwargs))]


def outputs(converted: Any, expectations: list[Expected]) -> list[np.ndarray]:
    if not isinstance(converted, np.ndarray):
        raise OutputTypeError(f"sdpa must return one array, got {type(converted).__name__}")
    return [converted]


SPEC = OpSpec("sdpa", build_cases, make_inputs, arguments, expected, outputs)
