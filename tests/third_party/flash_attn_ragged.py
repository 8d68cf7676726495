"""Template: flash-attn varlen and paged-KV kernels behind the kit's ops (CUDA only).

Copy it, point it at your kernel, run
``attnconf run --adapter my_ragged.py:ADAPTER --profile ci``. Without a CUDA device
or without flash_attn the adapter is unavailable: the run says why and exits 1
with nothing passed (never a pass). docs/ragged-adapters.md explains each choice;
FlashInfer and vLLM variants are described there.
"""
import torch

import conformance


def _unavailable():
    if not torch.cuda.is_available():
        return "needs a CUDA device; none is available"
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        return "flash_attn is not installed"
    return None


def sdpa_varlen(query, key, value, cu_seqlens_q, cu_seqlens_k, *, is_causal=False,
                causal_alignment="top_left", scale=None, window=None, softcap=None,
                enable_gqa=False, return_lse=False):
    from flash_attn import flash_attn_varlen_func

    lens_q, lens_k = cu_seqlens_q.diff(), cu_seqlens_k.diff()
    if is_causal and causal_alignment == "top_left" and bool((lens_q != lens_k).any()):
        raise NotImplementedError("flash-attn aligns causal masks to the bottom right")
    left, right = (-1, -1) if window is None else (
        -1 if window[0] is None else window[0], -1 if window[1] is None else window[1])
    out = flash_attn_varlen_func(
        query, key, value, cu_seqlens_q.int(), cu_seqlens_k.int(),
        int(lens_q.max()), int(lens_k.max()), softmax_scale=scale, causal=is_causal,
        window_size=(left, right), softcap=softcap or 0.0, return_attn_probs=return_lse)
    return (out[0], out[1]) if return_lse else out


def paged_attention(query, key_pages, value_pages, block_table, seq_lens, *,
                    is_causal=False, causal_alignment="bottom_right", scale=None,
                    enable_gqa=False, return_lse=False):
    from flash_attn import flash_attn_with_kvcache

    if causal_alignment != "bottom_right":
        raise NotImplementedError("flash_attn_with_kvcache aligns causal to the bottom right")
    if key_pages.shape[1] % 256:
        raise NotImplementedError("flash-attn's paged KV needs page_size % 256 == 0")
    out = flash_attn_with_kvcache(
        query, key_pages, value_pages, cache_seqlens=seq_lens.int(),
        block_table=block_table.clamp(min=0).int(), softmax_scale=scale, causal=is_causal,
        return_softmax_lse=return_lse)
    return out  # (out, lse) when return_lse


ADAPTER = conformance.adapter(
    type("FlashAttnRagged", (), {"sdpa_varlen": staticmethod(sdpa_varlen),
                                 "paged_attention": staticmethod(paged_attention)})(),
    name="flash-attn-ragged", framework="torch", device="cuda",
    dtypes=("float16", "bfloat16"))
reason = _unavailable()
if reason:
    ADAPTER.__attnconf_unavailable__ = reason
