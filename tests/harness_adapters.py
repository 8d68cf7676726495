"""Small adapters the harness tests check (honest kernels, kernels with one known flaw), and
the two ways the tests run ``attnconf``.

Each is a plain callable with torch's SDPA signature (or a declared one), so
the tests exercise the same loading paths a user's code takes
(``tests.harness_adapters:NAME`` on the CLI and in pytest). None of them is a
mutant of the zoo: they model *conventions* of real libraries (JAX, MLX,
flash-attn) and the classic mistakes a user's first kernel makes.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np

import conformance

# torch is imported inside the torch kernels: loading a NumPy kernel from this file stays fast

# ---------------------------------------------------------------------------
# wrapped third-party kernels (torch SDPA underneath, a library's convention on top)


def _torch_sdpa(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                enable_gqa=False):
    import torch.nn.functional as F

    return F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask,
                                          dropout_p=dropout_p, is_causal=is_causal, scale=scale,
                                          enable_gqa=enable_gqa)


def uniform_rows(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                 enable_gqa=False):
    """Masks by adding ``finfo.min`` instead of ``-inf`` (JAX, MLX): a row with no visible key
    gets equal scores everywhere, so its output is the uniform mean of the values."""
    import torch

    if attn_mask is not None:
        lowest = torch.finfo(query.dtype).min
        if attn_mask.dtype == torch.bool:
            bias = torch.zeros(attn_mask.shape, dtype=query.dtype)
            attn_mask = bias.masked_fill(~attn_mask, lowest)
        else:
            attn_mask = attn_mask.clamp(min=lowest)
    return _torch_sdpa(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@conformance.adapter(name="uniform-rows", framework="torch",
                     conventions={"fully_masked": "uniform"})
def uniform_rows_declared(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                          scale=None, enable_gqa=False):
    """The same kernel, declared (``conformance.adapter`` marks the object it is given)."""
    return uniform_rows(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


@conformance.adapter(name="bottom-right", framework="torch")
def bottom_right(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                 enable_gqa=False):
    """is_causal aligned to the bottom-right corner (MLX, flash-attn ≥ 2.1): query i sees keys
    j ≤ i + Lk − Lq, the KV-cache convention."""
    import torch

    if is_causal:
        lq, lk = query.shape[-2], key.shape[-2]
        attn_mask = torch.ones(lq, lk, dtype=torch.bool).tril(lk - lq)
    return _torch_sdpa(query, key, value, attn_mask, dropout_p, False, scale, enable_gqa)


# ---------------------------------------------------------------------------
# NumPy kernels: honest ones in every dtype, and classic mistakes


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = scores - scores.max(axis=-1, keepdims=True, initial=-np.inf)  # Lk = 0 is fine
    weights = np.exp(scores)
    return weights / weights.sum(axis=-1, keepdims=True)


def _attend(query, key, value, compute, scale):
    q, k, v = (np.asarray(x, compute) for x in (query, key, value))
    weights = _softmax(compute.type(scale) * (q @ np.swapaxes(k, -1, -2)))
    return (weights @ v).astype(query.dtype)


def honest_lowp(query, key, value, scale=None):
    """A straightforward kernel: float32 arithmetic for float32/16/bfloat16, float64 for float64."""
    compute = np.dtype(np.float64 if query.dtype == np.float64 else np.float32)
    scale = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    return _attend(query, key, value, compute, scale)


def float32_inside(query, key, value, scale=None):
    """Accepts float64 but computes in float32: float64 must be held to float64 accuracy."""
    scale = 1.0 / np.sqrt(query.shape[-1]) if scale is None else scale
    return _attend(query, key, value, np.dtype(np.float32), scale)


def no_sqrt_d(query, key, value):
    """Forgets the 1/√E scaling (the classic first-kernel bug)."""
    return _attend(query, key, value, np.dtype(np.float64), 1.0)


# The same bug as a user would write it in their own file: the text of that file.
NO_SQRT_D_FILE = '''\
import numpy as np


def attention(query, key, value):
    scores = query @ np.swapaxes(key, -1, -2)  # forgot / sqrt(E)
    scores = scores - scores.max(axis=-1, keepdims=True, initial=-np.inf)  # Lk = 0 is fine
    weights = np.exp(scores)
    weights = weights / weights.sum(axis=-1, keepdims=True)
    return (weights @ value).astype(query.dtype)
'''


# ---------------------------------------------------------------------------
# running attnconf from the tests: in-process where only the output matters, the console
# script where the exit status and the one-line stderr are the point


def spec(name: str) -> str:
    """The ``path/to/file.py:attr`` spec of one kernel above."""
    return f"{Path(__file__).resolve()}:{name}"


class CliRun(NamedTuple):
    code: int
    out: str
    err: str

    @property
    def summary(self) -> tuple[int, int, int]:
        """(passed, failed, skipped) from the terminal summary line."""
        found = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped\b", self.out, re.M)
        assert found, f"no summary line in:\n{self.out}"
        return tuple(int(n) for n in found.groups())


def attnconf(*argv: str) -> CliRun:
    """``attnconf ARGV`` in this process (argparse's own exit, status 2, included)."""
    from conformance.frontends.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exc:
            code = exc.code
    return CliRun(code, out.getvalue(), err.getvalue())


def console_script() -> list[str]:
    """The installed ``attnconf`` beside this interpreter, else ``python -m conformance``."""
    script = Path(sys.executable).with_name("attnconf")
    return [str(script)] if script.exists() else [sys.executable, "-m", "conformance"]


def attnconf_subprocess(*argv: str, cwd: Path | None = None) -> CliRun:
    done = subprocess.run([*console_script(), *argv], capture_output=True, text=True, cwd=cwd,
                          timeout=300, check=False)
    return CliRun(done.returncode, done.stdout, done.stderr)
