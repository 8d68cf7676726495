"""Golden cases of every reference variant other than ``sdpa`` (see ``golden.py``).

``CASES`` rows are ``(variant, scenario, params)``; ``BUILDERS[variant](rng, params)``
returns ``(arrays, kwargs)``: the array arguments by parameter name and the scalar
ones. ``PACKERS[variant]`` turns stored arrays back into call arguments where the
entry point takes something other than plain arrays (an ``EncoderLayerWeights``, a
positional ``None``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from conformance.fixturegen import golden_ragged
from conformance.fixturegen.golden_sdpa import _mask
from reference.encoder_layer import EncoderLayerWeights

P = Mapping[str, Any]
SDPA_SIZES = {"batch": [2], "hq": 2, "hk": 2, "lq": 7, "lk": 13, "e": 8, "ev": 8}


def _sdpa_like(rng, p: P, extra_kwargs=()) -> tuple[dict, dict]:
    s = {**SDPA_SIZES, **p.get("sizes", {})}
    batch = tuple(s["batch"])
    arrays = {"query": rng.normal(size=(*batch, s["hq"], s["lq"], s["e"])),
              "key": rng.normal(size=(*batch, s["hk"], s["lk"], s["e"])),
              "value": rng.normal(size=(*batch, s["hk"], s["lk"], s["ev"]))}
    if "mask" in p:
        arrays["attn_mask"] = _mask(p["mask"], s, rng)
    kwargs = {k: p[k] for k in ("is_causal", "scale", "causal_alignment", *extra_kwargs)
              if k in p}
    if s["hq"] != s["hk"]:
        kwargs["enable_gqa"] = True
    return arrays, kwargs, s


def sdpa_backward(rng, p: P):
    arrays, kwargs, s = _sdpa_like(rng, p)
    arrays["grad_out"] = rng.normal(size=(*s["batch"], s["hq"], s["lq"], s["ev"]))
    return arrays, kwargs


def blocked_sdpa(rng, p: P):
    arrays, kwargs, _ = _sdpa_like(rng, p, ("block_size", "fully_masked"))
    return arrays, kwargs


def multi_head_attention(rng, p: P):
    ln, sn, n, e, h = p["L"], p["S"], p["N"], p["E"], p["H"]
    unbatched, bf = p.get("unbatched", False), p.get("batch_first", False)
    lead = (lambda x: (x, e)) if unbatched else (
        (lambda x: (n, x, e)) if bf else (lambda x: (x, n, e)))
    arrays = {"query": rng.normal(size=lead(ln)), "key": rng.normal(size=lead(sn)),
              "value": rng.normal(size=lead(sn)),
              "in_proj_weight": rng.normal(size=(3 * e, e)) / np.sqrt(e),
              "out_proj_weight": rng.normal(size=(e, e)) / np.sqrt(e)}
    if p.get("biases", True):
        arrays["in_proj_bias"] = rng.normal(size=3 * e)
        arrays["out_proj_bias"] = rng.normal(size=e)
    if p.get("key_padding_mask"):
        kpm = rng.random((sn,) if unbatched else (n, sn)) < 0.3
        kpm[..., 0] = False  # torch MHA: True = NOT allowed; keep key 0 for every row
        arrays["key_padding_mask"] = kpm
    if "attn_mask" in p:
        shape = (ln, sn) if p["attn_mask"].endswith("2d") else ((1 if unbatched else n) * h,
                                                                 ln, sn)
        if p["attn_mask"].startswith("bool"):
            hidden = rng.random(shape) < 0.3
            hidden[..., 0] = False
            arrays["attn_mask"] = hidden
        else:
            arrays["attn_mask"] = rng.normal(size=shape)
    kwargs = {"num_heads": h, **{k: p[k] for k in ("need_weights", "average_attn_weights",
                                                    "batch_first") if k in p}}
    return arrays, kwargs


def feed_forward(rng, p: P):
    d, f = p["D"], p["F"]
    arrays = {"x": rng.normal(size=(*p["lead"], d)), "w1": rng.normal(size=(d, f)),
              "w2": rng.normal(size=(f, d))}
    if p.get("biases", True):
        arrays.update(b1=rng.normal(size=f), b2=rng.normal(size=d))
    return arrays, {"activation": p["activation"]}


def encoder_layer(rng, p: P):
    ln, n, e, f, h = p["L"], p["N"], p["E"], p["F"], p["H"]
    bf = p.get("batch_first", False)
    arrays = {"src": rng.normal(size=(n, ln, e) if bf else (ln, n, e))}
    shapes = {"in_proj_weight": (3 * e, e), "in_proj_bias": (3 * e,),
              "out_proj_weight": (e, e), "out_proj_bias": (e,), "linear1_weight": (f, e),
              "linear1_bias": (f,), "linear2_weight": (e, f), "linear2_bias": (e,),
              "norm1_weight": (e,), "norm1_bias": (e,), "norm2_weight": (e,),
              "norm2_bias": (e,)}
    for name, shape in shapes.items():
        w = rng.normal(size=shape)
        if len(shape) == 2:
            w = w / np.sqrt(shape[1])
        elif name.startswith("norm") and name.endswith("weight"):
            w = 1.0 + 0.1 * w  # layer-norm gains near 1
        arrays[f"weights.{name}"] = w
    if p.get("masks"):
        hidden = rng.random((ln, ln)) < 0.3
        np.fill_diagonal(hidden, False)
        arrays["src_mask"] = hidden
        kpm = rng.random((n, ln)) < 0.3
        kpm[:, 0] = False
        arrays["src_key_padding_mask"] = kpm
    kwargs = {"num_heads": h, **{k: p[k] for k in ("norm_first", "activation",
                                                    "layer_norm_eps", "batch_first") if k in p}}
    return arrays, kwargs


def decode_step(rng, p: P):
    b, hq, hk, lc, ln, e = p["batch"], p["hq"], p["hk"], p["lc"], p["ln"], p["e"]
    arrays = {"query": rng.normal(size=(*b, hq, ln, e)),
              "key_cache": rng.normal(size=(*b, hk, lc, e)),
              "value_cache": rng.normal(size=(*b, hk, lc, e)),
              "new_key": rng.normal(size=(*b, hk, ln, e)),
              "new_value": rng.normal(size=(*b, hk, ln, e))}
    return arrays, {k: p[k] for k in ("scale",) if k in p}


def self_attention(rng, p: P):
    d, dk, dv = p["d_model"], p["d_k"], p["d_v"]
    arrays = {"x": rng.normal(size=(*p["lead"], p["L"], d)),
              "w_query": rng.normal(size=(d, dk)), "w_key": rng.normal(size=(d, dk)),
              "w_value": rng.normal(size=(d, dv))}
    return arrays, {k: p[k] for k in ("scale",) if k in p}


def additive_attention(rng, p: P):
    lead, lq, lk, dq, dk, dv, a = (p[k] for k in ("lead", "lq", "lk", "dq", "dk", "dv", "A"))
    arrays = {"query": rng.normal(size=(*lead, lq, dq)), "keys": rng.normal(size=(*lead, lk, dk)),
              "values": rng.normal(size=(*lead, lk, dv)), "w_query": rng.normal(size=(dq, a)),
              "w_key": rng.normal(size=(dk, a)), "w_score": rng.normal(size=a)}
    if p.get("mask"):
        visible = rng.random((*lead, lq, lk)) < 0.6
        visible[..., 0] = True
        arrays["mask"] = visible
    return arrays, {}


def rotary_embedding(rng, p: P):
    arrays = {"x": rng.normal(size=(*p["lead"], p["L"], p["D"]))}
    if p.get("positions"):
        arrays["positions"] = np.sort(rng.integers(0, 1000, size=p["L"])).astype(np.float64)
    return arrays, {k: p[k] for k in ("base", "convention") if k in p}


def shaw_relative_attention(rng, p: P):
    arrays, _, s = _sdpa_like(rng, {"sizes": p["sizes"]})
    rows = 2 * p["max_distance"] + 1
    arrays.update(rel_keys=rng.normal(size=(rows, s["e"])),
                  rel_values=rng.normal(size=(rows, s["ev"])))
    return arrays, {k: p[k] for k in ("max_distance", "is_causal") if k in p}


def relative_attention(rng, p: P):
    arrays, _, s = _sdpa_like(rng, {"sizes": p["sizes"]})
    shape = (s["hq"], s["lq"], s["e"]) if p.get("per_head") else (s["lq"], s["e"])
    arrays["rel_embeddings"] = rng.normal(size=shape)
    return arrays, {}


def t5_relative_position_bucket(rng, p: P):
    rel = np.arange(-p["span"], p["span"] + 1, dtype=np.int64)
    return {"relative_position": rel}, {k: p[k] for k in ("bidirectional", "num_buckets",
                                                           "max_distance")}


def t5_relative_bias(rng, p: P):
    table = rng.normal(size=(p["num_buckets"], p["H"]))
    return {"bias_table": table}, {k: p[k] for k in ("lq", "lk", "bidirectional",
                                                      "num_buckets", "max_distance")}


def _scalars_only(names):
    return lambda rng, p: ({}, {k: p[k] for k in names if k in p})


BUILDERS = {
    "sdpa_backward": sdpa_backward, "blocked_sdpa": blocked_sdpa,
    "multi_head_attention": multi_head_attention, "feed_forward": feed_forward,
    "encoder_layer": encoder_layer, "decode_step": decode_step,
    "self_attention": self_attention, "additive_attention": additive_attention,
    "sinusoidal_positional_encoding": _scalars_only(("length", "d_model", "base")),
    "rotary_embedding": rotary_embedding, "alibi_slopes": _scalars_only(("num_heads",)),
    "shaw_relative_attention": shaw_relative_attention,
    "relative_attention": relative_attention, "relative_attention_naive": relative_attention,
    "t5_relative_position_bucket": t5_relative_position_bucket,
    "t5_relative_bias": t5_relative_bias,
}


def _with_none(*names):
    return lambda arrays: {**dict.fromkeys(names), **arrays}


def _encoder_args(arrays):
    fields = {k.removeprefix("weights."): v for k, v in arrays.items()
              if k.startswith("weights.")}
    rest = {k: v for k, v in arrays.items() if not k.startswith("weights.")}
    return {**rest, "weights": EncoderLayerWeights(**{f: fields.get(f) for f in
                                                      EncoderLayerWeights._fields})}


PACKERS = {
    "multi_head_attention": _with_none("in_proj_bias", "out_proj_bias"),
    "feed_forward": _with_none("b1", "b2"),
    "encoder_layer": _encoder_args,
}

_REL = {"batch": [], "hq": 2, "hk": 2, "lq": 7, "lk": 7, "e": 4, "ev": 4}
CASES = [
    ("sdpa_backward", "plain-b2-h2-q7-k13-e8", {}),
    ("sdpa_backward", "causal-bottom_right-gqa-mask-b0-h4kv2-q7-k13-e4v5",
     {"sizes": {"batch": [], "hq": 4, "hk": 2, "e": 4, "ev": 5}, "mask": "bool",
      "is_causal": True, "causal_alignment": "bottom_right"}),
    ("sdpa_backward", "float-mask-scale-b1-h1-q13-k7-e4",
     {"sizes": {"batch": [1], "hq": 1, "hk": 1, "lq": 13, "lk": 7, "e": 4, "ev": 4},
      "mask": "float", "scale": 0.5}),
    ("blocked_sdpa", "block4-causal-b2-h2-q7-k13-e8", {"block_size": 4, "is_causal": True}),
    ("blocked_sdpa", "block3-gqa-mask-rows-uniform-b0-h4kv2-q13-k7-e4",
     {"sizes": {"batch": [], "hq": 4, "hk": 2, "lq": 13, "lk": 7, "e": 4, "ev": 4},
      "block_size": 3, "mask": "bool_rows", "fully_masked": "uniform"}),
    ("blocked_sdpa", "block5-bottom_right-float-mask-b2-h2-q7-k13-e8",
     {"block_size": 5, "is_causal": True, "causal_alignment": "bottom_right",
      "mask": "float"}),
    ("multi_head_attention", "default-l5-s7-n2-e8-h2", {"L": 5, "S": 7, "N": 2, "E": 8, "H": 2}),
    ("multi_head_attention", "batch_first-masks-per-head-l7-s5-n2-e6-h3",
     {"L": 7, "S": 5, "N": 2, "E": 6, "H": 3, "batch_first": True, "key_padding_mask": True,
      "attn_mask": "float_3d", "average_attn_weights": False}),
    ("multi_head_attention", "unbatched-bool-mask-no-bias-l5-s5-e4-h2",
     {"L": 5, "S": 5, "N": 1, "E": 4, "H": 2, "unbatched": True, "attn_mask": "bool_2d",
      "biases": False, "key_padding_mask": True}),
    ("multi_head_attention", "no-weights-l1-s7-n1-e4-h1",
     {"L": 1, "S": 7, "N": 1, "E": 4, "H": 1, "need_weights": False}),
    ("feed_forward", "relu-l7-d8-f13", {"lead": [7], "D": 8, "F": 13, "activation": "relu"}),
    ("feed_forward", "gelu-no-bias-b2x3-d4-f7",
     {"lead": [2, 3], "D": 4, "F": 7, "activation": "gelu", "biases": False}),
    ("encoder_layer", "post-norm-l5-n2-e8-h2-f16", {"L": 5, "N": 2, "E": 8, "F": 16, "H": 2}),
    ("encoder_layer", "pre-norm-gelu-masks-batch_first-l7-n2-e6-h3-f8",
     {"L": 7, "N": 2, "E": 6, "F": 8, "H": 3, "norm_first": True, "activation": "gelu",
      "masks": True, "batch_first": True, "layer_norm_eps": 1e-6}),
    ("decode_step", "cache5-new1-b2-h2-e8",
     {"batch": [2], "hq": 2, "hk": 2, "lc": 5, "ln": 1, "e": 8}),
    ("decode_step", "cache0-new3-gqa-b0-h4kv2-e4",
     {"batch": [], "hq": 4, "hk": 2, "lc": 0, "ln": 3, "e": 4}),
    ("decode_step", "cache7-new2-scale-b1-h1-e4",
     {"batch": [1], "hq": 1, "hk": 1, "lc": 7, "ln": 2, "e": 4, "scale": 0.7}),
    ("self_attention", "l5-d4-k3-v3", {"lead": [], "L": 5, "d_model": 4, "d_k": 3, "d_v": 3}),
    ("self_attention", "unscaled-b2-l7-d6-k4-v5",
     {"lead": [2], "L": 7, "d_model": 6, "d_k": 4, "d_v": 5, "scale": 1.0}),
    ("additive_attention", "q7-k13",
     {"lead": [], "lq": 7, "lk": 13, "dq": 4, "dk": 6, "dv": 5, "A": 8}),
    ("additive_attention", "mask-b2-q1-k7",
     {"lead": [2], "lq": 1, "lk": 7, "dq": 3, "dk": 3, "dv": 2, "A": 4, "mask": True}),
    ("sinusoidal_positional_encoding", "l13-d8", {"length": 13, "d_model": 8}),
    ("sinusoidal_positional_encoding", "l7-d5-base100",
     {"length": 7, "d_model": 5, "base": 100.0}),
    ("rotary_embedding", "half-l7-d8", {"lead": [2], "L": 7, "D": 8, "convention": "half"}),
    ("rotary_embedding", "interleaved-positions-l13-d6",
     {"lead": [], "L": 13, "D": 6, "convention": "interleaved", "positions": True,
      "base": 500.0}),
    *(("alibi_slopes", f"h{h}", {"num_heads": h}) for h in (1, 8, 12)),
    ("shaw_relative_attention", "k2-q7-k7-e4",
     {"sizes": _REL, "max_distance": 2}),
    ("shaw_relative_attention", "k3-causal-b1-q7-k13-e4v3",
     {"sizes": {**_REL, "batch": [1], "lk": 13, "ev": 3}, "max_distance": 3,
      "is_causal": True}),
    ("relative_attention", "h2-l7-e4", {"sizes": _REL}),
    ("relative_attention", "per-head-b2-h2-l13-e4",
     {"sizes": {**_REL, "batch": [2], "lq": 13, "lk": 13}, "per_head": True}),
    ("relative_attention_naive", "h2-l7-e4", {"sizes": _REL}),
    *(("t5_relative_position_bucket", f"{'bi' if bi else 'causal'}-b{nb}-d{md}",
       {"span": 150, "bidirectional": bi, "num_buckets": nb, "max_distance": md})
      for bi, nb, md in ((True, 32, 128), (False, 32, 128), (True, 18, 128))),
    ("t5_relative_bias", "bi-q7-k13-h2",
     {"lq": 7, "lk": 13, "H": 2, "bidirectional": True, "num_buckets": 8, "max_distance": 10}),
    ("t5_relative_bias", "causal-q13-k13-h3",
     {"lq": 13, "lk": 13, "H": 3, "bidirectional": False, "num_buckets": 6,
      "max_distance": 9}),
]

# sdpa_varlen and paged_attention (issue 19): their own module
BUILDERS.update(golden_ragged.BUILDERS)
CASES += golden_ragged.CASES
