"""onnx's reference ``Attention`` (tests/third_party/onnx_attention.py) fails where it is wrong.

The evaluator reads Lq from the mask's shape when it builds the causal band
(``_apply_causal(base, 0)`` with ``base`` = the attn_mask): a mask that
broadcasts over the query axis, (Hq, 1, Lk) or (B, 1, 1, Lk), combined with
is_causal, gets a one-row band, so every query sees only key 0. With a
full-shape mask, or either alone, it is right. The kit must fail it exactly
there, and the failure must name both the broadcast mask and is_causal.
"""

from __future__ import annotations

import re

import numpy as np
import pytest

from conformance.adapters.load import resolve
from conformance.profiles import PROFILES
from conformance.results import FAILED, PASSED
from conformance.runner import RunConfig, run

onnx = pytest.importorskip("onnx", reason="needs onnx: pip install -c constraints.txt onnx")
SCENARIO = "sdpa-mask-bcast-query-causal"


@pytest.fixture(scope="module")
def onnx_adapter():
    pytest.importorskip("onnx.reference.ops.op_attention",
                        reason="this onnx has no reference Attention (opset 23, onnx >= 1.18)")
    from third_party.onnx_attention import onnx_attention

    return onnx_attention


@pytest.fixture(scope="module")
def numeric_results(onnx_adapter):
    resolved = resolve("tests/third_party/onnx_attention.py:onnx_attention", obj=onnx_adapter)
    config = RunConfig(profile=PROFILES["ci"], only=("numeric",), isolate="inprocess")
    results, _ = run(resolved, config)
    return results


def test_the_bug_is_in_onnx_not_in_the_wrapper(onnx_adapter):
    """Independent of the kit: a (1, Lk) mask with is_causal differs from the same mask
    expanded to (Lq, Lk); without is_causal the two agree."""
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((1, 2, 5, 8)) for _ in range(3))
    bias = np.where(rng.random((1, 5)) < 0.8, rng.standard_normal((1, 5)), -np.inf)
    bias[0, 0] = 0.0
    full = np.broadcast_to(bias, (5, 5)).copy()
    for is_causal, equal in ((False, True), (True, False)):
        narrow = onnx_adapter(q, k, v, attn_mask=bias, is_causal=is_causal)
        wide = onnx_adapter(q, k, v, attn_mask=full, is_causal=is_causal)
        assert np.allclose(narrow, wide, rtol=0, atol=1e-12) == equal, is_causal


def query_broadcast_with_causal(message: str) -> bool:
    """A generated case (conformance.ops.sdpa_space) whose mask form has 1 for Lq
    (``(1, Lk)``, ``(B, 1, 1, Lk)``), with is_causal: the same bug, reached by the axes."""
    form = re.search(r"mask_form='([^']*)'", message)
    return ("is_causal=True" in message and form is not None
            and form.group(1).split("-")[-2:] == ["1", "k"])


def test_kit_fails_onnx_on_query_broadcast_mask_with_causal(numeric_results):
    failed = [r for r in numeric_results if r.status == FAILED]
    named = [r for r in failed if r.case.split("[")[0] == SCENARIO]
    assert named, "onnx's Attention passed the mask-bcast-query-causal cases"
    others = [r.case for r in failed
              if r not in named and not query_broadcast_with_causal(r.message)]
    assert not others, others
    for r in named:
        assert SCENARIO in r.message and "is_causal=True" in r.message, r.message
        assert "mask='float-bcast'" in r.message, r.message
        assert "--case" in r.repro and SCENARIO in r.repro


@pytest.mark.parametrize("scenario", ["sdpa-mask-causal", "sdpa-causal", "sdpa-float-mask-bcast"])
def test_kit_passes_onnx_on_each_half_alone(numeric_results, scenario):
    """The full-shape mask with causal, causal alone, the broadcast mask alone: all pass, so the
    failure is the combination's."""
    mine = [r for r in numeric_results if r.case.split("[")[0] == scenario]
    assert mine and any(r.status == PASSED for r in mine), scenario
    assert not [r.case for r in mine if r.status == FAILED]
