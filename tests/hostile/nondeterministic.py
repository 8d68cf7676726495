"""Right the first time; a call repeating earlier inputs exactly gets a perturbed answer."""

import hashlib

from hostile._honest import sdpa_with

SEEN: set[str] = set()


def _drift(honest, query, key, value):
    digest = hashlib.sha256(b"".join(x.tobytes() for x in (query, key, value))).hexdigest()
    out = honest()
    if digest in SEEN:
        out = out + out.dtype.type(1e-3)
    SEEN.add(digest)
    return out


sdpa = sdpa_with(_drift, always=True)
