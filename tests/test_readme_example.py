"""The README's "check your own function" example is conformant, as the README says."""

from __future__ import annotations

import re
from pathlib import Path

from conformance.frontends.cli import main

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_example_is_conformant(tmp_path, capsys):
    code = re.search(r"```python\n# my_attention.py\n(.*?)```", README.read_text(), re.S)
    assert code, "README lost its my_attention.py example"
    (tmp_path / "my_attention.py").write_text(code.group(1))
    exit_code = main(["run", "--adapter", f"{tmp_path / 'my_attention.py'}:my_sdpa",
                      "--profile", "quick"])
    out = capsys.readouterr().out
    assert exit_code == 0, out
    counts = re.search(r"^(\d+) passed, (\d+) failed, (\d+) skipped$", out, re.M)
    assert counts and counts.group(2) == "0"
    assert counts.group(0) in README.read_text(), "README quotes other counts than the run gives"
