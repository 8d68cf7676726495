"""The built-in adapters: the reference itself, torch's SDPA backends and nn.MultiheadAttention.

Each entry of BUILTINS is a factory, so torch is imported only when a torch
adapter is asked for.
"""

from __future__ import annotations

import contextlib
from types import SimpleNamespace
from typing import Any

from conformance.adapters.declare import adapter
from conformance.vocabulary import FEATURES

TORCH_SDPA_FEATURES = ("bool_mask", "float_mask", "causal", "scale", "gqa", "dropout")


def numpy_reference() -> Any:
    """Every op of the NumPy reference, all features but random dropout (the reference
    drops only through an explicit keep-mask, which no adapter parameter takes): the kit
    checks itself first."""
    import reference

    ops = {
        "sdpa": "sdpa",
        "sdpa_backward": "sdpa_backward",
        "multi_head_attention": "multi_head_attention",
        "rotary_embedding": "rotary_embedding",
        "alibi_slopes": "alibi_slopes",
        "relative_attention": "relative_attention",
        "additive_attention": "additive_attention",
        "decode_step": "decode_step",
        "sdpa_varlen": "sdpa_varlen",
        "paged_attention": "paged_attention",
    }
    found = {op: reference.VARIANTS[name] for op, name in ops.items() if name in reference.VARIANTS}
    features = tuple(f for f in FEATURES if f != "dropout")
    return adapter(SimpleNamespace(**found), name="numpy", features=features,
                   dtypes=("float64", "float32", "float16", "bfloat16"))


def _torch_sdpa(backend: str | None, device: str) -> Any:
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = None if backend is None else getattr(SDPBackend, backend)

    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        # no torch.no_grad(): the gradients check differentiates through this call
        context = contextlib.nullcontext() if chosen is None else sdpa_kernel([chosen])
        with context:
            return F.scaled_dot_product_attention(
                query, key, value, attn_mask=attn_mask, dropout_p=dropout_p,
                is_causal=is_causal, scale=scale, enable_gqa=enable_gqa)

    name = "torch" if backend is None else f"torch-{backend.lower().replace('_attention', '')}"
    sdpa.__name__ = name.replace("-", "_")
    dtypes = ("float64", "float32", "float16", "bfloat16") if device == "cpu" else (
        "float16", "bfloat16")
    target: Any = sdpa
    if backend is None and device == "cpu":  # plus sdpa_varlen, paged_attention (flex_attention)
        from conformance.adapters.torch_ragged import ragged_ops

        target = SimpleNamespace(sdpa=sdpa, **ragged_ops())
    declared = adapter(target, name=name, framework="torch", device=device, dtypes=dtypes,
                       features=TORCH_SDPA_FEATURES)
    if device == "cuda" and not torch.cuda.is_available():
        declared.__attnconf_unavailable__ = f"{name} needs a CUDA device; none is available"
    return declared


def torch_mha() -> Any:
    """nn.MultiheadAttention behind the op ``multi_head_attention``."""
    import torch

    def multi_head_attention(query, key, value, num_heads, in_proj_weight, in_proj_bias,
                             out_proj_weight, out_proj_bias, *, key_padding_mask=None,
                             attn_mask=None, need_weights=True, average_attn_weights=True,
                             batch_first=False):
        if (in_proj_bias is None) != (out_proj_bias is None):
            raise NotImplementedError("nn.MultiheadAttention has biases on both or neither")
        embed = in_proj_weight.shape[1]
        module = torch.nn.MultiheadAttention(
            embed, num_heads, bias=in_proj_bias is not None, batch_first=batch_first,
            dtype=query.dtype)
        with torch.no_grad():
            module.in_proj_weight.copy_(in_proj_weight)
            module.out_proj.weight.copy_(out_proj_weight)
            if in_proj_bias is not None:
                module.in_proj_bias.copy_(in_proj_bias)
                module.out_proj.bias.copy_(out_proj_bias)
            module.eval()
            return module(query, key, value, key_padding_mask=key_padding_mask,
                          attn_mask=attn_mask, need_weights=need_weights,
                          average_attn_weights=average_attn_weights)

    return adapter(SimpleNamespace(multi_head_attention=multi_head_attention), name="torch-mha",
                   framework="torch", dtypes=("float64", "float32"))


BUILTINS = {
    "numpy": numpy_reference,
    "torch": lambda: _torch_sdpa(None, "cpu"),
    "torch-math": lambda: _torch_sdpa("MATH", "cpu"),
    "torch-mha": torch_mha,
    "torch-flash": lambda: _torch_sdpa("FLASH_ATTENTION", "cuda"),
    "torch-efficient": lambda: _torch_sdpa("EFFICIENT_ATTENTION", "cuda"),
    "torch-cudnn": lambda: _torch_sdpa("CUDNN_ATTENTION", "cuda"),
}
