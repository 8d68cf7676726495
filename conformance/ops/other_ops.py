"""The ops besides ``sdpa`` (signatures in docs/ops.md), checked in float64.

Each op is a table: scenarios (name, label, options), an input maker, which
inputs go positionally and which as keywords. Expected values come from the
reference entry point of the same name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.adapters.frameworks import OutputTypeError
from conformance.cases import Case, make_case, unique_cases
from conformance.errors import Unsupported
from conformance.ops.spec import Expected, OpSpec
from conformance.profiles import Profile


@dataclass(frozen=True)
class SimpleOp:
    name: str
    scenarios: tuple[tuple[str, str, dict[str, Any]], ...]
    make: Callable[[np.random.Generator, dict[str, Any]], dict[str, Any]]
    positional: tuple[str, ...]
    keywords: tuple[str, ...] = ()
    output_names: tuple[str, ...] = ("output",)


def _normal(rng, *shape):
    return rng.standard_normal(shape)


def _backward_inputs(rng, o):
    hq, hk, lq, lk, e = o["hq"], o["hk"], o["lq"], o["lk"], 8
    inputs = {"query": _normal(rng, 2, hq, lq, e), "key": _normal(rng, 2, hk, lk, e),
              "value": _normal(rng, 2, hk, lk, e), "grad_out": _normal(rng, 2, hq, lq, e)}
    if o.get("mask"):
        inputs["attn_mask"] = rng.random((lq, lk)) < 0.7
        inputs["attn_mask"][:, 0] = True
    for key in ("is_causal", "enable_gqa"):
        if o.get(key):
            inputs[key] = True
    return inputs


def _mha_inputs(rng, o):
    e, h, n, lq, lk = 16, 4, 2, 5, 7
    batch_first, batched = o.get("batch_first", False), o.get("batched", True)
    def seq(length):
        shape = (length, e) if not batched else ((n, length, e) if batch_first else (length, n, e))
        return _normal(rng, *shape)
    inputs = {"query": seq(lq), "key": seq(lk), "value": seq(lk), "num_heads": h,
              "in_proj_weight": _normal(rng, 3 * e, e) / 4,
              "out_proj_weight": _normal(rng, e, e) / 4,
              "in_proj_bias": None if o.get("no_bias") else _normal(rng, 3 * e),
              "out_proj_bias": None if o.get("no_bias") else _normal(rng, e),
              "need_weights": o.get("need_weights", True),
              "average_attn_weights": o.get("average", True), "batch_first": batch_first}
    if o.get("key_padding"):
        pad = np.zeros((n, lk) if batched else (lk,), bool)
        pad[..., -2:] = True  # True = padding, ignored (torch MHA convention)
        inputs["key_padding_mask"] = pad
    if o.get("attn_mask") == "bool":
        inputs["attn_mask"] = np.triu(np.ones((lq, lk), bool), k=3)  # True = NOT allowed
    elif o.get("attn_mask") == "float":
        inputs["attn_mask"] = _normal(rng, lq, lk)
    return inputs


def _rotary_inputs(rng, o):
    inputs = {"x": _normal(rng, 2, 3, 9, 8)}
    if o.get("offset"):
        inputs["positions"] = np.arange(9) + o["offset"]
    for key in ("convention", "base"):
        if key in o:
            inputs[key] = o[key]
    return inputs


def _relative_inputs(rng, o):
    length = o["length"]
    return {"query": _normal(rng, 2, 2, length, 8), "key": _normal(rng, 2, 2, length, 8),
            "value": _normal(rng, 2, 2, length, 8), "rel_embeddings": _normal(rng, length, 8)}


def _additive_inputs(rng, o):
    inputs = {"query": _normal(rng, 2, 5, 6), "keys": _normal(rng, 2, 7, 4),
              "values": _normal(rng, 2, 7, 3), "w_query": _normal(rng, 6, 8),
              "w_key": _normal(rng, 4, 8), "w_score": _normal(rng, 8)}
    if o.get("mask"):
        mask = rng.random((2, 5, 7)) < 0.6
        mask[..., 0] = True
        inputs["mask"] = mask
    return inputs


def _decode_inputs(rng, o):
    hq, hk, lc, ln, e = o["hq"], o["hk"], o["cache"], o["new"], 8
    return {"query": _normal(rng, 2, hq, ln, e), "key_cache": _normal(rng, 2, hk, lc, e),
            "value_cache": _normal(rng, 2, hk, lc, e), "new_key": _normal(rng, 2, hk, ln, e),
            "new_value": _normal(rng, 2, hk, ln, e)}


SIMPLE_OPS = (
    SimpleOp("sdpa_backward", (
        ("plain", "h2-q5-k7", {"hq": 2, "hk": 2, "lq": 5, "lk": 7}),
        ("causal", "h2-q6-k6", {"hq": 2, "hk": 2, "lq": 6, "lk": 6, "is_causal": True}),
        ("bool-mask", "h2-q5-k7", {"hq": 2, "hk": 2, "lq": 5, "lk": 7, "mask": True}),
        ("gqa", "h4/2-q5-k7", {"hq": 4, "hk": 2, "lq": 5, "lk": 7, "enable_gqa": True}),
    ), _backward_inputs, ("query", "key", "value", "grad_out"),
        ("attn_mask", "is_causal", "enable_gqa"), ("dq", "dk", "dv")),
    SimpleOp("multi_head_attention", tuple(
        (name, "e16-h4-n2-l5-s7", opts) for name, opts in (
            ("plain", {}), ("batch-first", {"batch_first": True}),
            ("key-padding", {"key_padding": True}), ("bool-mask", {"attn_mask": "bool"}),
            ("float-mask", {"attn_mask": "float"}), ("no-bias", {"no_bias": True}),
            ("per-head-weights", {"average": False}), ("no-weights", {"need_weights": False}),
            ("unbatched", {"batched": False, "key_padding": True}))),
        _mha_inputs, ("query", "key", "value", "num_heads", "in_proj_weight", "in_proj_bias",
                      "out_proj_weight", "out_proj_bias"),
        ("key_padding_mask", "attn_mask", "need_weights", "average_attn_weights", "batch_first"),
        ("output", "weights")),
    SimpleOp("rotary_embedding", (
        ("half", "l9-d8", {}), ("half-offset", "l9-d8", {"offset": 5}),
        ("interleaved", "l9-d8", {"convention": "interleaved"}),
        ("half-base500", "l9-d8", {"base": 500.0}),
    ), _rotary_inputs, ("x",), ("positions", "base", "convention")),
    SimpleOp("alibi_slopes", tuple(
        ("heads", f"h{h}", {"num_heads": h}) for h in (1, 2, 3, 5, 6, 8, 12, 16, 24)),
        lambda rng, o: {"num_heads": o["num_heads"]}, ("num_heads",)),
    SimpleOp("relative_attention", tuple(
        ("music", f"h2-l{n}-d8", {"length": n}) for n in (1, 6, 9)),
        _relative_inputs, ("query", "key", "value", "rel_embeddings")),
    SimpleOp("additive_attention", (
        ("plain", "q5-k7", {}), ("mask", "q5-k7", {"mask": True}),
    ), _additive_inputs, ("query", "keys", "values", "w_query", "w_key", "w_score"), ("mask",)),
    SimpleOp("decode_step", (
        ("prefill", "h2-c0-n3", {"hq": 2, "hk": 2, "cache": 0, "new": 3}),
        ("one-token", "h2-c6-n1", {"hq": 2, "hk": 2, "cache": 6, "new": 1}),
        ("chunk-gqa", "h4/2-c6-n3", {"hq": 4, "hk": 2, "cache": 6, "new": 3}),
    ), _decode_inputs, ("query", "key_cache", "value_cache", "new_key", "new_value"), (),
        ("output", "key_cache", "value_cache")),
)


def _spec(op: SimpleOp) -> OpSpec:
    def cases(profile: Profile, run_seed: int) -> list[Case]:
        return unique_cases(make_case(op.name, scenario, label, "float64", run_seed, options)
                            for scenario, label, options in op.scenarios)

    def inputs(case: Case) -> dict[str, Any]:
        return op.make(np.random.default_rng(case.seed), dict(case.options))

    def arguments(binding, values: dict[str, Any], case: Case) -> tuple[list, dict[str, Any]]:
        missing = sorted(k for k in op.keywords if k in values and k not in binding.params)
        if missing:
            raise Unsupported(f"adapter's {op.name} does not accept {missing} needed by {case.id}")
        return ([values[n] for n in op.positional],
                {k: values[k] for k in op.keywords if k in values})

    def expected(values: dict[str, Any], case: Case, conventions) -> list[Expected]:
        import reference

        fn = reference.VARIANTS[op.name]
        out = fn(*(values[n] for n in op.positional),
                 **{k: values[k] for k in op.keywords if k in values})
        outs = out if isinstance(out, tuple) else (out,)
        return [Expected(name, np.asarray(o, np.float64), np.asarray(o, np.float64),
                         np.float64) for name, o in zip(op.output_names, outs, strict=True)
                if o is not None]

    def outputs(converted: Any, expectations: list[Expected]) -> list[np.ndarray]:
        values = converted if isinstance(converted, tuple) else (converted,)
        if len(values) != len(op.output_names):
            raise OutputTypeError(f"{op.name} must return {len(op.output_names)} value(s) "
                                  f"{op.output_names}, got {len(values)}")
        wanted = {e.name for e in expectations}
        picked = [v for name, v in zip(op.output_names, values, strict=True) if name in wanted]
        for name, value in zip(sorted(wanted, key=op.output_names.index), picked, strict=True):
            if not isinstance(value, np.ndarray):
                raise OutputTypeError(f"{op.name} output {name!r} is {type(value).__name__}, "
                                      f"expected an array")
        return picked

    return OpSpec(op.name, cases, inputs, arguments, expected, outputs)


SPECS = {op.name: _spec(op) for op in SIMPLE_OPS}
