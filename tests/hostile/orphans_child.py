"""Starts a long-lived child in its own session (``start_new_session=True``) at import and
another from each trigger call, and never waits for them: none may outlive the run. Each
child's command line carries ATTNCONF_HOSTILE_MARK so a test can find it in /proc."""

import os
import subprocess
import sys

from hostile._honest import sdpa_with

MARK = os.environ.get("ATTNCONF_HOSTILE_MARK", "attnconf-hostile-orphan")
CODE = f"import time  # {MARK}\nwhile True: time.sleep(1)"


def spawn() -> None:
    subprocess.Popen([sys.executable, "-c", CODE], start_new_session=True,
                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)


spawn()


def _hook(honest, query, key, value):
    spawn()
    return honest()


sdpa = sdpa_with(_hook)
