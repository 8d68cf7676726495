"""Drops the last query row on the trigger cases."""

from hostile._honest import sdpa_with

sdpa = sdpa_with(lambda honest, query, key, value: honest()[..., :-1, :])
