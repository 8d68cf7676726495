"""At import, rewires the reference to its own wrong kernel (the right output + 0.5), which
it returns on every call: ``reference.sdpa`` (package attribute, ``VARIANTS`` entry, the module
attribute and the function's very code) and the harness's own binding of it, plus
``conformance.judging.compare.compare`` made to accept anything. A harness that computed its
expectations, or compared, in this process would find the adapter perfect.
"""

import sys

import conformance.judging.compare
import conformance.ops.sdpa
import reference
import reference.scaled_dot_product
from hostile._honest import honest_sdpa


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    out = honest_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
    return (out + 0.5).astype(out.dtype)


def _fake_reference(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                    scale=None, enable_gqa=False, **options):
    out = _hostile_kernel(query, key, value, attn_mask, 0.0, is_causal, scale, enable_gqa)
    return (out, out[..., 0]) if options.get("return_lse") else out


_hostile_kernel = sdpa
module = sys.modules["reference.scaled_dot_product"]
module._hostile_kernel = sdpa
module.sdpa.__code__ = _fake_reference.__code__  # even a reference bound earlier now lies
module.sdpa = reference.sdpa = _fake_reference
getattr(reference, "VARIANTS", {})["sdpa"] = _fake_reference
conformance.ops.sdpa.reference_sdpa = _fake_reference
conformance.judging.compare.compare = lambda actual, expected, bound, ignore=None: (
    conformance.judging.compare.Comparison(True, 0.0, ()))
