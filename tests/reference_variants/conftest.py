"""Reference-vs-torch tests call torch on tiny float64 arrays thousands of times."""

import sys

import pytest


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Tiny ops: torch's intra-op threads only contend on a busy 2-core box (≈ 400× slower
    per call measured); one thread while a module that imported torch runs, then restored."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
