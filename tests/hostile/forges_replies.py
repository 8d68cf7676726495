"""Writes forged bytes into the harness's reply pipe on the trigger cases, announcing an
absurdly long message, then answers correctly: the harness must notice, not hang or trust it.

The worker's command line names the pipe (what any code in the worker could find out).
"""

import os
import struct
import sys

from hostile._honest import sdpa_with


def _forge(honest, query, key, value):
    reply_fd = int(sys.argv[3])
    os.write(reply_fd, struct.pack("<Q", 1 << 62) + b'{"status": "ok"}')
    return honest()


sdpa = sdpa_with(_forge)
