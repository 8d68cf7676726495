"""Memoizes on (shapes, dtype): a case whose shapes were seen before gets that earlier answer,
so results depend on which cases ran first (global state kept across calls)."""

from hostile._honest import sdpa_with

CACHE: dict = {}


def _stale(honest, query, key, value):
    slot = (query.shape, key.shape, value.shape, str(query.dtype))
    if slot not in CACHE:
        CACHE[slot] = honest()
    return CACHE[slot].copy()


sdpa = sdpa_with(_stale, always=True)
