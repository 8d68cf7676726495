"""The sdpa case space (conformance/ops/sdpa_axes.py): covering arrays, drawn inputs,
layouts that reach the adapter unchanged."""

from __future__ import annotations

import os
import re
import time

import ml_dtypes
import numpy as np
import pytest

from conformance.adapters.frameworks import NumpyFramework
from conformance.adapters.isolated import wire
from conformance.cases import make_case
from conformance.frontends.cli import main
from conformance.ops import op_specs, sdpa_draw, sdpa_space
from conformance.ops.sdpa_axes import AXES, AXIS, CONSTRAINTS, TRIPLES
from conformance.profiles import PROFILES
from conformance.runner import DEFAULT_SEED

LAYOUTS = [v.value for v in AXIS["layout"].values]


def test_every_value_has_a_token_and_a_reason():
    for axis in AXES:
        tokens = [v.token for v in axis.values]
        assert len(set(tokens)) == len(tokens), axis.name
        assert all(re.fullmatch(r"[a-z0-9]+", t) for t in tokens), axis.name
        assert all(v.reason for v in axis.values), axis.name
    assert all(c.reason and set(c.fields) <= set(AXIS) for c in CONSTRAINTS)


def test_the_stored_covering_arrays_belong_to_this_axes_table():
    # a changed conformance/ops/sdpa_axes.py must be followed by
    # python -m conformance.ops.sdpa_space
    for name in ("quick", "ci", "full"):
        assert sdpa_space.rows(name, PROFILES[name].dtypes)


@pytest.mark.parametrize("name", ["quick", "ci"])
def test_every_feasible_pair_is_covered(name):
    report = sdpa_space.coverage(name, PROFILES[name].dtypes)
    for kind in ("values", "pairs", "triples"):
        covered, feasible = report[kind]
        assert covered == feasible, (kind, sdpa_space.uncovered(name, PROFILES[name].dtypes,
                                                               kind)[:10])
    assert report["pairs"][1] > 3000  # the pairs of 15 axes, not a handful
    assert report["triples"][1] > (100 if name == "ci" else -1)


def test_every_generated_row_meets_every_constraint():
    for name in ("quick", "ci"):
        for row in sdpa_space.rows(name, PROFILES[name].dtypes):
            values = sdpa_space.row_values(row)
            failed = [c.reason for c in CONSTRAINTS if not c.holds(values)]
            assert not failed, (sdpa_space.scenario_name(row), failed)


def test_ci_declares_the_interacting_triples_quick_none():
    assert sdpa_space.triples_for("quick") == ()
    assert sdpa_space.triples_for("ci") == TRIPLES
    assert ("relation", "causal", "mask") in TRIPLES


def test_coverage_is_printed_at_100_percent_for_ci(capsys):
    assert main(["list", "cases", "--coverage", "--profile", "ci"]) == 0
    out = capsys.readouterr().out
    for kind in ("values", "pairs", "triples"):
        assert re.search(rf"^{kind} +(\d+)/\1 feasible covered \(100\.0 %\)$", out, re.M), out
    assert "uncovered pairs: 0" in out and "uncovered triples: 0" in out
    assert re.search(r"^  layout +contiguous:\d+ blhd:[1-9]", out, re.M)


def test_generated_cases_are_values_with_readable_unique_ids():
    cases = [c for c in op_specs()["sdpa"].cases(PROFILES["ci"], DEFAULT_SEED)
             if c.scenario.startswith("axes")]
    assert len(cases) >= len(sdpa_space.rows("ci", PROFILES["ci"].dtypes))
    again = sdpa_space.generated_cases("ci", PROFILES["ci"].dtypes, DEFAULT_SEED)
    assert [c.id for c in again] == [c.id for c in cases]
    assert any("-causalbr-" in c.id and "-float-" in c.id for c in cases)


def case_with(**options):
    shapes = (2, 3) if options.pop("two_batch", False) else (4,)
    from conformance.cases import AttentionShapes

    sh = AttentionShapes(shapes, 4, 2, 5, 70, 16, 8)
    base = {"values": "normal", "layout": "contiguous"}
    return make_case("sdpa", "axes-test", sh.label, "float32", 7, {**base, **options}, (), sh)


def test_per_sample_key_padding_differs_per_sample():
    case = case_with(mask="axes", mask_form="b-1-1-k", mask_pattern="padding",
                     mask_dtype="bool", mask_fill=None)
    mask = sdpa_draw.make_inputs(case)["attn_mask"]
    assert mask.shape == (4, 1, 1, 70)
    lengths = mask.sum(axis=-1).ravel()
    assert len(set(lengths.tolist())) == 4 and lengths.min() >= 1
    assert all(mask[b, 0, 0, :n].all() for b, n in enumerate(lengths))


@pytest.mark.parametrize(("form", "shape"), [
    ("1-k", (1, 70)), ("q-k", (5, 70)), ("h-q-k", (4, 5, 70)),
    ("1-q-k", (1, 5, 70)), ("b-1-q-k", (4, 1, 5, 70)), ("b-h-q-k", (4, 4, 5, 70))])
def test_mask_forms_have_their_shapes(form, shape):
    case = case_with(mask="axes", mask_form=form, mask_pattern="random", mask_dtype="float",
                     mask_fill=-1e4)
    mask = sdpa_draw.make_inputs(case)["attn_mask"]
    assert mask.shape == shape and mask.dtype == np.float32
    assert (mask == np.float32(-1e4)).any()  # the fill is a finite bias, not -inf


def test_explicit_causal_and_block_masks():
    br = case_with(mask="axes", mask_form="q-k", mask_pattern="tril_bottom_right",
                   mask_dtype="bool", mask_fill=None)
    mask = sdpa_draw.make_inputs(br)["attn_mask"]
    assert mask[0].sum() == 70 - 5 + 1 and mask[-1].all()  # 1 < Lq < Lk: bottom-right
    tiles = case_with(mask="axes", mask_form="q-k", mask_pattern="tiles", mask_dtype="bool",
                      mask_fill=None)
    mask = sdpa_draw.make_inputs(tiles)["attn_mask"]
    assert not mask[:, :64].any() and mask.any(axis=-1).all()  # first tile hidden, rows live
    docs = case_with(mask="axes", mask_form="q-k", mask_pattern="docs", mask_dtype="bool",
                     mask_fill=None)
    mask = sdpa_draw.make_inputs(docs)["attn_mask"]
    assert mask[0, 0] and not mask[0, -1] and mask[-1, -1] and not mask[-1, 0]


def test_self_attention_with_large_activations_overflows_16_bit_dot_products():
    case = make_case("sdpa", "axes-selflarge", "x", "float16", 3,
                     {"values": "selflarge", "layout": "contiguous"}, (),
                     sdpa_space.shapes_of({"batch": (1,), "heads": (2, 2), "len_q": 9,
                                           "len_k": 9, "dims": (64, 64)}))
    inputs = sdpa_draw.make_inputs(case)
    q, k = inputs["query"], inputs["key"]
    assert np.array_equal(q, k)
    with np.errstate(over="ignore"):  # the overflow is the point
        raw = np.matmul(q, np.swapaxes(k, -1, -2))  # float16 products, unscaled
    assert np.isinf(raw).any()
    scaled = np.matmul(q.astype(np.float32), np.swapaxes(k, -1, -2).astype(np.float32)) / 8
    assert np.abs(scaled).max() < 65504 / 2  # scaled first, the logits fit


def pipe_channel() -> wire.Channel:
    read_fd, write_fd = os.pipe()
    return wire.Channel(read_fd, write_fd)


def soon() -> float:
    return time.monotonic() + 5.0


def offset_of(a: np.ndarray) -> int:
    root = a
    while isinstance(root.base, np.ndarray):
        root = root.base
    if root.base is not None and not isinstance(root.base, np.ndarray):
        root = np.frombuffer(root.base, np.uint8)
    return a.__array_interface__["data"][0] - root.__array_interface__["data"][0]


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, ml_dtypes.bfloat16])
def test_layouts_reach_the_adapter_unchanged(layout, dtype):
    x = np.random.default_rng(1).standard_normal((2, 3, 5, 4)).astype(dtype)
    q, k, v = sdpa_draw.lay_out(layout, x, x.copy(), x.copy(), 1)
    channel = pipe_channel()
    arrays: list = []
    channel.send({"args": wire.encode([q, k, v], arrays)}, arrays, soon())
    message, received = channel.receive(soon())
    sent_over = wire.decode(message["args"], received)
    for sent, got in zip((q, k, v), sent_over, strict=True):
        for copy in (got, NumpyFramework().to_native(sent)):
            assert copy.dtype == sent.dtype and copy.strides == sent.strides
            assert offset_of(copy) == offset_of(sent)
            assert np.array_equal(copy.astype(np.float64), sent.astype(np.float64))
            assert not np.shares_memory(copy, sent)


def test_a_view_reaching_outside_its_bytes_is_refused():
    channel = pipe_channel()
    header = (b'{"arrays": [{"dtype": "<f8", "shape": [4], "nbytes": 16, '
              b'"strides": [8], "offset": 0}]}')
    os.write(channel.write_fd, wire._LENGTH.pack(len(header)) + header + bytes(16))
    with pytest.raises(wire.ProtocolError, match="array view outside its bytes"):
        channel.receive(soon())
