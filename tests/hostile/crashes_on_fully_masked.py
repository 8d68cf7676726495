"""Honest except when an attn_mask hides every key of some query row (the fully_masked probe,
and the numeric check's empty-rows cases): there ``sdpa`` dies of SIGSEGV, ``sdpa_hangs``
hangs, ``sdpa_raises`` raises RuntimeError and ``sdpa_unsupported`` raises
NotImplementedError. Only the last may read as "unsupported"; the others are failures that
name what happened (conformance/checks/conventions.py, ``probe_fully_masked``)."""

import os
import signal
import threading

import numpy as np

from hostile._honest import honest_sdpa


def _empties_a_row(attn_mask) -> bool:
    if attn_mask is None:
        return False
    visible = attn_mask if attn_mask.dtype == bool else np.isfinite(attn_mask)
    return bool((~visible.any(axis=-1)).any())


def _segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def _hang():
    threading.Event().wait()


def _raise():
    raise RuntimeError("empty rows are not handled (hostile zoo)")


def _unsupported():
    raise NotImplementedError("empty rows are not supported by this build")


def _with(on_empty_row):
    def sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
             enable_gqa=False):
        if _empties_a_row(attn_mask):
            on_empty_row()
        return honest_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale,
                           enable_gqa)

    return sdpa


sdpa = _with(_segfault)
sdpa_hangs = _with(_hang)
sdpa_raises = _with(_raise)
sdpa_unsupported = _with(_unsupported)
