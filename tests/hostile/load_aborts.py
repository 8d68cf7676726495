"""Calls os.abort() while being imported (only ever loaded in a worker process)."""

import os

os.abort()
