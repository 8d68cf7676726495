"""Correct ``sdpa_varlen`` on PyTorch nested jagged tensors (NJT), CPU; torch imported on call.

A packed array and its cu_seqlens are exactly an NJT's values and offsets:
``torch.nested.nested_tensor_from_jagged(query, cu_seqlens_q)`` is the (B, j, Hq, E)
nested tensor (no copy), transposed to (B, Hq, j, E) for
``F.scaled_dot_product_attention``, whose jagged path attends each sequence alone
(query and key raggedness may differ: cross lengths and empty sequences work).

What torch 2.13 does there on CPU, and so what this entry declares:

* ``is_causal=True`` raises ``RuntimeError: No viable backend for
  scaled_dot_product_attention was found`` (the math kernel: "Nested tensors for query /
  key are not supported when is_causal=True"): no ``is_causal`` parameter, causal cases
  are unsupported;
* ``enable_gqa=True`` with Hq ≠ Hk raises in the nested matmul ("For nested tensors, batch
  dimensions must have the same sizes, no broadcasting is currently performed"): the key
  and value heads are repeated here (query head h reads head h // (Hq / Hk)) before the
  nested tensors are built;
* a pack in which some sequence has no query or no key often raises (``RuntimeError:
  setStorage: sizes [1, 1, 1], strides [1, 1, 1], storage offset 1, … out of bounds for
  storage of size 1`` for lens_q = [1, 1], lens_k = [0, 1]; found by the ``packing``
  property), and one without any query row raises in ``to_padded_tensor``: such sequences
  are left out of the nested call, the rows of a sequence without keys are 0;
* ``scale`` works; window, softcap, ALiBi and the lse have no NJT form: not accepted.

float64, float32, float16 and bfloat16 (the math kernel in the input dtype).
"""

from __future__ import annotations

from types import SimpleNamespace

import conformance

from .numpy_sdpa import ALL_DTYPES


def _nested(packed, offsets):
    """(B, H, j, D) nested jagged view of a (total, H, D) pack and its (B + 1,) offsets."""
    import torch

    return torch.nested.nested_tensor_from_jagged(packed, offsets.to(torch.int64)).transpose(1, 2)


def _njt_sdpa(query, key, value, cu_seqlens_q, cu_seqlens_k, scale):
    import torch.nn.functional as F

    out = F.scaled_dot_product_attention(_nested(query, cu_seqlens_q),
                                         _nested(key, cu_seqlens_k),
                                         _nested(value, cu_seqlens_k), scale=scale)
    return out.transpose(1, 2).values()


def njt_sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, *, scale=None,
                    enable_gqa=False):
    """sdpa_varlen (docs/ops.md) as one F.scaled_dot_product_attention over nested tensors;
    sequences without a query or without a key are left out of it (rows of the latter: 0)."""
    import torch

    heads_q, heads_kv = query.shape[1], key.shape[1]
    if heads_q != heads_kv:
        if not enable_gqa:
            raise ValueError(f"{heads_q} query heads and {heads_kv} key heads need enable_gqa")
        # NJT SDPA does not broadcast heads: repeat each kv head for its group of query heads
        key = key.repeat_interleave(heads_q // heads_kv, dim=1)
        value = value.repeat_interleave(heads_q // heads_kv, dim=1)
    cu_q, cu_k = cu_seqlens_q.to(torch.int64), cu_seqlens_k.to(torch.int64)
    keep = (cu_q.diff() > 0) & (cu_k.diff() > 0)
    if bool(keep.all()):
        return _njt_sdpa(query, key, value, cu_q, cu_k, scale)
    # NJT SDPA raises on a sequence with an empty side: attend the others only
    out = query.new_zeros((query.shape[0], heads_q, value.shape[2]))
    kept = torch.nonzero(keep).flatten().tolist()
    if not kept:
        return out
    rows = torch.cat([torch.arange(int(cu_q[b]), int(cu_q[b + 1])) for b in kept])
    keys = torch.cat([torch.arange(int(cu_k[b]), int(cu_k[b + 1])) for b in kept])
    zero = torch.zeros(1, dtype=torch.int64)
    out[rows] = _njt_sdpa(query[rows], key[keys], value[keys],
                          torch.cat([zero, cu_q.diff()[keep].cumsum(0)]),
                          torch.cat([zero, cu_k.diff()[keep].cumsum(0)]), scale)
    return out


TORCH_NJT = conformance.adapter(
    SimpleNamespace(sdpa_varlen=njt_sdpa_varlen),
    name="correct-torch-njt", framework="torch", dtypes=ALL_DTYPES,
    features=("scale", "gqa"),
)
