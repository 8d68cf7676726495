"""Split one run's cases into N disjoint parts for N CI jobs (``--shard I/N``).

A unit of work is a case of a case-by-case check (numeric, golden, gradients, output_contract:
key ``(op, check, case id)``) or a whole check otherwise (a property, the conventions probes:
key ``(op, check)``: hypothesis drives its examples as one unit). A unit belongs to shard
``1 + sha256(key) mod N``: a stable hash, so the split is the same on every machine, Python
version and ``PYTHONHASHSEED``, and each unit is in exactly one shard whatever N is.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CASE_CHECKS = frozenset({"numeric", "golden", "gradients", "output_contract"})


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as a CI matrix counts
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def has_check(self, op: str, check: str) -> bool:
        """Whether any unit of ``check`` on ``op`` can be in this shard (a whole-check unit
        elsewhere is not run at all here)."""
        return check in CASE_CHECKS or self.has(op, check, "")

    def has(self, op: str, check: str, case: str) -> bool:
        """Whether the result (op, check, case) belongs to this shard."""
        key = (op, check, case) if check in CASE_CHECKS else (op, check)
        digest = hashlib.sha256("\x1f".join(key).encode()).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index - 1


def parse_shard(text: str | None) -> Shard | None:
    """``"I/N"`` with 1 ≤ I ≤ N as a Shard; None for None; ValueError naming the flag else."""
    if text is None:
        return None
    index, sep, count = text.partition("/")
    try:
        shard = Shard(int(index), int(count))
    except ValueError:
        shard = Shard(0, 0)
    if not sep or not 1 <= shard.index <= shard.count:
        raise ValueError(f"--shard must be I/N with 1 ≤ I ≤ N (e.g. 2/3), got {text}")
    return shard
