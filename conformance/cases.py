"""Cases are values: a frozen dataclass with a readable id and its own seed.

``sdpa-causal-gqa[b2-h8/2-q5-k7-e16-float32]`` reads: op ``sdpa``, scenario
``causal-gqa``, batch dims (2,), 8 query heads over 2 key/value heads, Lq=5,
Lk=7, E=16, float32. The seed is derived from the run seed and the id with
crc32, so it does not depend on PYTHONHASHSEED or on the order of cases.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple


class AttentionShapes(NamedTuple):
    """Sizes of one attention call: query (*batch, Hq, Lq, E), key/value (*batch, Hk, Lk, E|Ev)."""

    batch: tuple[int, ...]
    heads_q: int
    heads_kv: int
    len_q: int
    len_k: int
    dim: int
    dim_v: int

    @property
    def label(self) -> str:
        batch = "b" + ("x".join(map(str, self.batch)) if self.batch else "0")
        heads = f"h{self.heads_q}" + (f"/{self.heads_kv}" if self.heads_kv != self.heads_q else "")
        dims = f"e{self.dim}" + (f"v{self.dim_v}" if self.dim_v != self.dim else "")
        return f"{batch}-{heads}-q{self.len_q}-k{self.len_k}-{dims}"


def derive_seed(run_seed: int, case_id: str) -> int:
    """A 31-bit seed for one case, stable across processes and Python versions."""
    return zlib.crc32(f"{run_seed}:{case_id}".encode()) & 0x7FFFFFFF


@dataclass(frozen=True)
class Case:
    """One numeric case of one op. ``options`` are the call's flags, as sorted pairs."""

    op: str
    scenario: str
    label: str
    dtype: str
    seed: int
    options: tuple[tuple[str, Any], ...] = ()
    features: frozenset[str] = field(default_factory=frozenset)
    shapes: AttentionShapes | None = None

    @property
    def id(self) -> str:
        return f"{self.op}-{self.scenario}[{self.label}-{self.dtype}]"

    def option(self, name: str, default: Any = None) -> Any:
        return dict(self.options).get(name, default)

    def describe(self) -> str:
        flags = ", ".join(f"{k}={v!r}" for k, v in self.options) or "defaults"
        return f"{self.id} (seed {self.seed}; {flags})"


def make_case(
    op: str,
    scenario: str,
    label: str,
    dtype: str,
    run_seed: int,
    options: dict[str, Any] | None = None,
    features: Iterable[str] = (),
    shapes: AttentionShapes | None = None,
) -> Case:
    """Build a case whose seed is derived from ``run_seed`` and its id."""
    draft = Case(op, scenario, label, dtype, 0)
    return Case(
        op=op,
        scenario=scenario,
        label=label,
        dtype=dtype,
        seed=derive_seed(run_seed, draft.id),
        options=tuple(sorted((options or {}).items())),
        features=frozenset(features),
        shapes=shapes,
    )


def unique_cases(cases: Iterable[Case]) -> list[Case]:
    """The cases in order; a duplicate id is a bug in the matrix and fails loudly."""
    seen: dict[str, Case] = {}
    for case in cases:
        if case.id in seen:
            raise ValueError(f"duplicate case id {case.id!r} in the case matrix")
        seen[case.id] = case
    return list(seen.values())
