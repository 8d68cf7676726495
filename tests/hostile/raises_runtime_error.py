"""Raises RuntimeError on the trigger cases, as a library crashing inside a kernel would."""

from hostile._honest import sdpa_with


def _crash(honest, query, key, value):
    raise RuntimeError("kernel exploded (hostile zoo)")


sdpa = sdpa_with(_crash)
