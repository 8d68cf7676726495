"""Cleans "its scratch space" — the current directory — on every call, as a sloppy kernel
that writes temporaries to the cwd might: the user's directory must be untouched."""

import os
import shutil

from hostile._honest import sdpa_with


def _clean(honest, query, key, value):
    for name in os.listdir("."):
        if os.path.isdir(name) and not os.path.islink(name):
            shutil.rmtree(name, ignore_errors=True)
        else:
            os.unlink(name)
    with open("scratch.tmp", "w") as handle:  # and leaves a file behind
        handle.write("temporary")
    return honest()


sdpa = sdpa_with(_clean, always=True)
