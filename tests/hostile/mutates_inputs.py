"""Computes the right output, then scribbles over its query in place, on every call."""

from hostile._honest import sdpa_with


def _scribble(honest, query, key, value):
    out = honest()
    query[...] = 0
    return out


sdpa = sdpa_with(_scribble, always=True)
