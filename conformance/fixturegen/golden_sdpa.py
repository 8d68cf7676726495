"""Golden cases of ``reference.sdpa``: odd sizes (1, 7, 13), batch dims 0-2, every option.

Each case is ``(scenario, params)``; params hold the sizes (``batch``, ``hq``, ``hk``,
``lq``, ``lk``, ``e``, ``ev``), the input ``dtype`` and ``amplitude``, the kind of
``mask`` to draw, and the call's options. ``alibi``/``sinks``/``dropout`` ask the builder
to draw those arrays. Outputs are always requested with ``return_lse`` and
``return_weights`` (except in ``plain-returns``), so the lse and the weights are pinned too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reference import alibi_slopes


def _case(name: str, *, batch=(), hq=2, hk=None, lq=7, lk=13, e=8, ev=None,
          **options: Any) -> tuple[str, dict[str, Any]]:
    hk = hq if hk is None else hk
    ev = e if ev is None else ev
    b = "x".join(map(str, batch)) if batch else "0"
    heads = f"h{hq}" + (f"kv{hk}" if hk != hq else "")
    dims = f"e{e}" + (f"v{ev}" if ev != e else "")
    label = f"b{b}-{heads}-q{lq}-k{lk}-{dims}"
    return f"{name}-{label}", {"batch": list(batch), "hq": hq, "hk": hk, "lq": lq, "lk": lk,
                               "e": e, "ev": ev, **options}


CASES = [
    _case("plain", hq=1, lq=1, lk=1, e=1),
    _case("plain", lq=7, lk=13, e=8, ev=5),
    _case("plain", batch=(2,), hq=3, lq=13, lk=7, e=4),
    _case("plain", batch=(2, 3), hq=1, lq=5, lk=5, e=6),
    _case("plain-returns", hq=1, lq=7, lk=7, returns=False),
    _case("plain-float32", batch=(2,), lq=7, lk=13, dtype="float32"),
    _case("plain-empty-keys", hq=1, lq=3, lk=0),
    _case("scale", lq=7, lk=7, scale=0.3),
    _case("scale-large", lq=7, lk=7, scale=2.5),
    _case("mask-bool", batch=(2,), lq=7, lk=13, mask="bool"),
    _case("mask-bool-bcast-qk", batch=(2, 3), hq=1, lq=7, lk=7, mask="bool_qk"),
    _case("mask-bool-bcast-k", batch=(2,), hq=3, lq=13, lk=13, mask="bool_k"),
    _case("mask-bool-bcast-h", hq=3, lq=7, lk=13, mask="bool_h"),
    _case("mask-float", batch=(2,), lq=7, lk=13, mask="float"),
    _case("mask-float-finite-min", hq=2, lq=7, lk=13, mask="float_min"),
    _case("causal-top_left", lq=7, lk=13, is_causal=True),
    _case("causal-top_left", lq=13, lk=7, is_causal=True),
    _case("causal-top_left", batch=(2,), lq=7, lk=7, is_causal=True),
    _case("causal-bottom_right", lq=7, lk=13, is_causal=True, causal_alignment="bottom_right"),
    *(_case(f"causal-bottom_right-rows-{policy}", lq=13, lk=7, is_causal=True,
            causal_alignment="bottom_right", fully_masked=policy)
      for policy in ("zeros", "nan", "uniform")),
    _case("causal-mask-bool", batch=(2,), lq=7, lk=13, is_causal=True, mask="bool"),
    _case("causal-mask-float", lq=13, lk=13, is_causal=True, mask="float"),
    _case("gqa", hq=6, hk=2, lq=7, lk=13),
    _case("gqa-mqa-causal", batch=(2,), hq=4, hk=1, lq=7, lk=7, is_causal=True),
    _case("gqa-mask-bool-bottom_right", hq=4, hk=2, lq=7, lk=13, mask="bool", is_causal=True,
          causal_alignment="bottom_right"),
    _case("window", lq=13, lk=13, window=[2, 1]),
    _case("window-left-only", lq=7, lk=13, window=[None, 0]),
    _case("window-right-only", lq=7, lk=13, window=[3, None], causal_alignment="bottom_right"),
    _case("window-diagonal", lq=7, lk=7, window=[0, 0]),
    _case("window-rows-uniform", lq=13, lk=7, window=[1, 0], causal_alignment="bottom_right",
          fully_masked="uniform"),
    _case("softcap", lq=7, lk=13, softcap=5.0, amplitude=3.0),
    _case("softcap-causal", batch=(2,), lq=13, lk=13, softcap=2.0, amplitude=3.0,
          is_causal=True),
    _case("alibi", hq=4, lq=7, lk=13, alibi=True),
    _case("alibi-npot-causal-bottom_right", hq=3, lq=7, lk=13, alibi=True, is_causal=True,
          causal_alignment="bottom_right"),
    _case("sinks", hq=2, lq=7, lk=13, sinks=True),
    _case("sinks-causal", batch=(2,), hq=3, lq=13, lk=13, sinks=True, is_causal=True),
    _case("sinks-rows-hidden", hq=2, lq=7, lk=7, sinks=True, mask="bool_rows"),
    _case("dropout", lq=7, lk=13, dropout=0.25),
    _case("dropout-causal", batch=(2,), lq=13, lk=13, dropout=0.5, is_causal=True),
    *(_case(f"fully-masked-bool-{policy}", lq=7, lk=13, mask="bool_rows", fully_masked=policy)
      for policy in ("zeros", "nan", "uniform")),
    *(_case(f"fully-masked-float-{policy}", lq=7, lk=13, mask="float_rows",
            fully_masked=policy) for policy in ("zeros", "nan", "uniform")),
    *(_case(f"compute-{dt}", batch=(2,), lq=13, lk=7, compute_dtype=dt)
      for dt in ("float32", "float16", "bfloat16")),
    _case("compute-float16-causal-mask", lq=7, lk=13, compute_dtype="float16", mask="float",
          is_causal=True),
    _case("everything", batch=(2,), hq=4, hk=2, lq=7, lk=13, ev=5, mask="float",
          is_causal=True, causal_alignment="bottom_right", window=[4, 0], softcap=4.0,
          alibi=True, sinks=True, dropout=0.25, scale=0.4),
]

MASKS = ("bool", "bool_qk", "bool_k", "bool_h", "bool_rows", "float", "float_min",
         "float_rows")
OPTIONS = ("is_causal", "scale", "causal_alignment", "window", "softcap", "fully_masked",
           "compute_dtype")


def _keep_some(visible: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Make every row of ``visible`` (..., L, Lk) show at least one key."""
    empty = ~visible.any(axis=-1)
    if visible.shape[-1]:
        cols = rng.integers(0, visible.shape[-1], size=empty.shape)
        visible = visible | (empty[..., None] & (np.arange(visible.shape[-1]) == cols[..., None]))
    return visible


def _mask(kind: str, p: Mapping[str, Any], rng: np.random.Generator) -> np.ndarray:
    full = (*p["batch"], p["hq"], p["lq"], p["lk"])
    if kind.startswith("bool"):
        shape = {"bool": full, "bool_rows": full, "bool_qk": full[-2:],
                 "bool_k": (1, p["lk"]), "bool_h": (p["hq"], 1, p["lk"])}[kind]
        visible = _keep_some(rng.random(shape) < 0.6, rng)
        if kind == "bool_rows":  # hide every key of a few rows
            visible[rng.random(shape[:-1]) < 0.3] = False
            visible[..., 0, :] = False
        return visible
    bias = rng.normal(size=full)
    if kind == "float_min":
        bias = rng.normal(size=(1, p["lk"]))
        bias[..., ::3] = np.finfo(np.float64).min  # a bias, never a hide
        return bias
    hidden = ~_keep_some(rng.random(full) < 0.7, rng)
    if kind == "float_rows":
        hidden[rng.random(full[:-1]) < 0.3] = True
        hidden[..., 0, :] = True
    return np.where(hidden, -np.inf, bias)


def build(rng: np.random.Generator, p: Mapping[str, Any]) -> tuple[dict, dict]:
    dtype = np.dtype(p.get("dtype", "float64"))
    amp = p.get("amplitude", 1.0)
    batch, hq, hk = tuple(p["batch"]), p["hq"], p["hk"]
    arrays = {
        "query": (amp * rng.normal(size=(*batch, hq, p["lq"], p["e"]))).astype(dtype),
        "key": (amp * rng.normal(size=(*batch, hk, p["lk"], p["e"]))).astype(dtype),
        "value": rng.normal(size=(*batch, hk, p["lk"], p["ev"])).astype(dtype),
    }
    kwargs: dict[str, Any] = {k: p[k] for k in OPTIONS if k in p}
    if hk != hq:
        kwargs["enable_gqa"] = True
    if p.get("returns", True):
        kwargs.update(return_lse=True, return_weights=True)
    if "mask" in p:
        arrays["attn_mask"] = _mask(p["mask"], p, rng)
        if arrays["attn_mask"].dtype != bool:
            arrays["attn_mask"] = arrays["attn_mask"].astype(dtype)
    if p.get("alibi"):
        arrays["alibi_slopes"] = alibi_slopes(hq)
    if p.get("sinks"):
        arrays["sinks"] = rng.normal(size=hq)
    if "dropout" in p:
        kwargs["dropout_p"] = p["dropout"]
        arrays["dropout_mask"] = rng.random((*batch, hq, p["lq"], p["lk"])) >= p["dropout"]
    return arrays, kwargs
