"""Returns a Python float (the sum of the right output) on the trigger cases."""

from hostile._honest import sdpa_with

sdpa = sdpa_with(lambda honest, query, key, value: float(honest().sum()))
