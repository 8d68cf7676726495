"""onnx's reference evaluator for the ``Attention`` op (opset 23), wrapped as a user would.

``onnx_attention`` has torch's SDPA signature and builds a one-node ONNX
model per kind of call (dtype, mask dtype, is_causal, scale), run by
``onnx.reference.ReferenceEvaluator``. The wrapper only adapts shapes:

* ONNX wants 4-D (B, H, L, D): leading batch dims (zero or more) are
  flattened into one B; a mask's batch dims are broadcast to the query's and
  flattened the same way, and every other mask axis is passed as given (ONNX
  broadcasts masks right-aligned, as torch does), so a mask that broadcasts
  over the query axis reaches onnx as such;
* GQA is native in ONNX (Hq a multiple of Hk, heads repeated interleaved);
* dropout is not part of the op: ``dropout_p > 0`` is unsupported;
* the op's ``scale`` is a FLOAT attribute (32 bits) and the evaluator takes its
  square root in float32 (Q and K are each multiplied by sqrt(scale)): every
  explicit scale, even 2.5, is then off by a relative 1e-8, far above
  float64's accuracy, so an explicit scale is unsupported in float64.

Declared with ``mask_with_causal``: the ONNX op takes attn_mask and is_causal
together (torch refuses that). Conventions: top-left causal (no KV cache),
fully masked rows give 0, as torch.

Run: ``attnconf run --adapter tests/third_party/onnx_attention.py:onnx_attention``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

import conformance

OPSET = 23
FEATURES = ("bool_mask", "float_mask", "causal", "scale", "gqa", "mask_with_causal")


@functools.lru_cache(maxsize=64)
def _evaluator(dtype: str, mask_dtype: str | None, is_causal: bool, scale: float | None) -> Any:
    """A ReferenceEvaluator of one ``Attention`` node with these attributes."""
    from onnx import helper
    from onnx.helper import np_dtype_to_tensor_dtype
    from onnx.reference import ReferenceEvaluator

    elem = np_dtype_to_tensor_dtype(np.dtype(dtype))
    names = ["Q", "K", "V"] + (["attn_mask"] if mask_dtype else [])
    types = [elem] * 3 + ([np_dtype_to_tensor_dtype(np.dtype(mask_dtype))] if mask_dtype else [])
    attributes: dict[str, Any] = {"is_causal": int(is_causal)}
    if scale is not None:
        attributes["scale"] = float(scale)
    node = helper.make_node("Attention", names, ["Y"], **attributes)
    graph = helper.make_graph(
        [node], "attention",
        [helper.make_tensor_value_info(n, t, None) for n, t in zip(names, types, strict=True)],
        [helper.make_tensor_value_info("Y", elem, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    return ReferenceEvaluator(model)


def _as_4d(x: np.ndarray) -> np.ndarray:
    """(..., H, L, D) → (B, H, L, D), B the product of the batch dims (1 when none)."""
    return x.reshape(-1, *x.shape[-3:])


def _mask_4d(mask: np.ndarray, batch: tuple[int, ...]) -> np.ndarray:
    """A mask with batch dims gets them broadcast to the query's and flattened; a mask of rank
    ≤ 3 has none and is passed unchanged (it broadcasts over B in ONNX as in torch)."""
    if mask.ndim <= 3:
        return mask
    tail = mask.shape[-3:]
    full = np.broadcast_to(mask, (*batch, *tail))
    return np.ascontiguousarray(full).reshape(-1, *tail)


@conformance.adapter(name="onnx-reference-attention", dtypes=("float64", "float32", "float16"),
                     features=FEATURES)
def onnx_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                   enable_gqa=False):
    """torch's SDPA signature over onnx.reference's Attention (opset 23)."""
    if dropout_p:
        raise NotImplementedError("ONNX Attention has no dropout")
    if key.shape[-3] != query.shape[-3] and not enable_gqa:
        raise ValueError(f"query heads {query.shape[-3]} != key heads {key.shape[-3]} "
                         f"without enable_gqa")
    batch = query.shape[:-3]
    feeds = {"Q": _as_4d(query), "K": _as_4d(key), "V": _as_4d(value)}
    mask_dtype = None
    if attn_mask is not None:
        feeds["attn_mask"] = _mask_4d(np.asarray(attn_mask), batch)
        mask_dtype = feeds["attn_mask"].dtype.name
    if scale is not None and query.dtype == np.float64:
        raise NotImplementedError("ONNX's scale attribute is float32 (its square root is taken "
                                  "in float32): an explicit scale is not float64-accurate")
    scale = None if scale is None else float(scale)
    (out,) = _evaluator(query.dtype.name, mask_dtype, bool(is_causal), scale).run(None, feeds)
    return out.reshape(*batch, *out.shape[-3:]).astype(query.dtype, copy=False)
