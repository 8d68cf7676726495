"""A correct adapter that points fd 1 at its own log file at import and writes a line per
call: the kit must leave that file alone (it truncated whatever was on fd 1 after each call).
ATTNCONF_HOSTILE_LOG names the file."""

import os
import sys

from hostile._honest import honest_sdpa

_fd = os.open(os.environ["ATTNCONF_HOSTILE_LOG"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
os.dup2(_fd, 1)
CALLS = [0]


def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
         enable_gqa=False):
    CALLS[0] += 1
    print(f"own log: call {CALLS[0]}", flush=True)
    sys.stdout.flush()
    return honest_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)
