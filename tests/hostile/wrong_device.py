"""A torch adapter that returns its output on the "meta" device on the trigger cases."""

import torch.nn.functional as F

import conformance


@conformance.adapter(name="wrong-device", framework="torch")
def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                         dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                                         enable_gqa=enable_gqa)
    if query.shape[-2] == 7 and key.shape[-2] == 5 and str(query.dtype) == "torch.float64":
        return out.to("meta")
    return out
