"""A correct adapter that keeps a 128 MiB scratch memmap in its working directory, as some
out-of-core kernels do: no undocumented file-size cap may fail it."""

import numpy as np

from hostile._honest import honest_sdpa

SIZE = 128 << 20
_scratch = None


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    global _scratch
    if _scratch is None:
        _scratch = np.lib.format.open_memmap("scratch.npy", mode="w+", dtype=np.uint8,
                                             shape=(SIZE,))
        _scratch[-1] = 1  # the file really is 128 MiB
        _scratch.flush()
    return honest_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
