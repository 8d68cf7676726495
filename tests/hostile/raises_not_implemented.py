"""Raises NotImplementedError on every call: every case is unsupported, so nothing passes."""

from hostile._honest import sdpa_with


def _refuse(honest, query, key, value):
    raise NotImplementedError("this build supports no shape at all (hostile zoo)")


sdpa = sdpa_with(_refuse, always=True)
