"""Returns a read-only view of its query input on the trigger cases (same shape and dtype)."""

from hostile._honest import sdpa_with


def _view(honest, query, key, value):
    view = query[...]
    view.flags.writeable = False
    return view


sdpa = sdpa_with(_view)
