"""The GPU adapter template (tests/third_party/flash_attn_ragged.py, shown in
docs/ragged-adapters.md) on a machine without CUDA or flash_attn: the run says why the
adapter is unavailable, passes nothing and is not conformant."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness_adapters import attnconf

TEMPLATE = Path(__file__).resolve().parent / "third_party" / "flash_attn_ragged.py"
DOC = Path(__file__).resolve().parent.parent / "docs" / "ragged-adapters.md"


def test_the_doc_shows_the_template_file_verbatim():
    assert f"```python\n{TEMPLATE.read_text(encoding='utf-8')}```" in DOC.read_text(
        encoding="utf-8")


def test_without_cuda_the_template_is_unavailable_never_passed(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the template may run")
    report = tmp_path / "r.json"
    run = attnconf("run", "--adapter", f"{TEMPLATE}:ADAPTER", "--profile", "quick",
                   "--isolate", "inprocess", "--report", f"json:{report}")
    assert run.code == 1, run.out + run.err
    assert "needs a CUDA device; none is available" in run.out
    assert "NOT CONFORMANT" in run.out
    data = json.loads(report.read_text())
    assert data["summary"]["passed"] == 0 and data["summary"]["skipped"] > 0
