"""Returns the right numbers as a nested list on the trigger cases."""

from hostile._honest import sdpa_with

sdpa = sdpa_with(lambda honest, query, key, value: honest().tolist())
