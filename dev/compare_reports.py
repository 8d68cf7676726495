"""Compare two directories of ``attnconf run --report json:...`` reports, before and after
a restructuring: equal except timings and module paths.

    python dev/compare_reports.py BEFORE_DIR AFTER_DIR

Normalises: keys naming a time (``*_s``, ``seconds``, ``duration``, ``elapsed``,
``started``) are dropped; module names and paths moved by dev/restructure.py are mapped to
their new names in every string, and the attnconf pid in the default worker-log name
(``attnconf-worker-PID.log``) is blanked. Prints one line per report pair and exits 1 if
any pair differs.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from restructure import MOVES, module_of

WORKER_LOG_PID = re.compile(r"attnconf-worker-\d+\.log")
TIME_KEY = re.compile(r"(^|_)(s|seconds|duration|elapsed|time|timings?|started)$")


def renames() -> list[tuple[str, str]]:
    pairs = []
    for old, new in MOVES.items():
        pairs.append((old, new))
        pairs.append((module_of(old) if old.endswith(".py") else old.replace("/", "."),
                      module_of(new) if new.endswith(".py") else new.replace("/", ".")))
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


RENAMES = renames()


def normalise(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items() if not TIME_KEY.search(k)}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str):
        for old, new in RENAMES:
            value = re.sub(rf"(?<![\w/.]){re.escape(old)}(?![\w])", new, value)
        return WORKER_LOG_PID.sub("attnconf-worker-PID.log", value)
    return value


def first_difference(a: Any, b: Any, where: str = "") -> str | None:
    if type(a) is not type(b):
        return f"{where}: {a!r} != {b!r}"
    if isinstance(a, dict):
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                return f"{where}.{key}: only in {'after' if key in b else 'before'}"
            found = first_difference(a[key], b[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list):
        if len(a) != len(b):
            return f"{where}: {len(a)} items != {len(b)}"
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            found = first_difference(x, y, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if a == b else f"{where}: {a!r} != {b!r}"


def main(argv: list[str]) -> int:
    before, after = Path(argv[0]), Path(argv[1])
    differ = 0
    for path in sorted(before.glob("*.json")):
        other = after / path.name
        if not other.exists():
            print(f"{path.name}: missing after")
            differ += 1
            continue
        a, b = (normalise(json.loads(p.read_text())) for p in (path, other))
        found = first_difference(a, b)
        summary = a.get("summary")
        print(f"{path.name}: {'identical' if not found else 'DIFFERS ' + found}  {summary}")
        differ += bool(found)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
