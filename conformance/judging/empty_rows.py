"""Rows with no visible key: what hid them, the ``fully_masked`` policy each one is held
to, and how to tell a failure that is only about them.

A row is *empty* when the reference gives it no visible key (its lse is −inf; a sink
keeps a row non-empty). What hid the row picks the entry of a ``fully_masked`` mapping:

* ``causal`` — causality alone leaves the row no key: the aligned query position
  i' = i (+ Lk − Lq under ``bottom_right``) is negative, i.e. the first Lq − Lk rows
  of a bottom-right causal mask with Lq > Lk;
* ``window`` — otherwise, the window (with causality, when set) leaves it no key:
  max(0, i' − left) > min(Lk − 1, i' + right[, i']);
* ``bool`` / ``float`` — otherwise the attn_mask hid the row's last keys (alone or
  together with causality or a window): the kind is the mask's dtype.

A mapping that leaves a kind out holds it to ``zeros`` (torch's behaviour).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from conformance.judging.compare import compare
from conformance.judging.tolerance import Bound
from conformance.vocabulary import MASK_KINDS

KINDS = MASK_KINDS  # ("bool", "float", "causal", "window")
POLICIES = ("zeros", "nan", "uniform")  # what a row can be seen to follow ("any" is not seen)
DEFAULT_POLICY = "zeros"


def policy_for(declared: str | Mapping[str, str], kind: str) -> str:
    """The policy a row hidden by ``kind`` is held to under the declared ``fully_masked``."""
    return declared.get(kind, DEFAULT_POLICY) if isinstance(declared, Mapping) else declared


def accepting_policy(declared: str | Mapping[str, str], observed: Mapping[str, str],
                     keep: tuple[str, ...] = KINDS) -> str | dict[str, str]:
    """The smallest ``fully_masked`` value that accepts ``observed`` (kind → policy) and
    keeps the declared policy of the other kinds in ``keep`` (and of those a declared
    mapping names): one string when they all agree, else the mapping of the kinds that are
    not ``zeros`` (a mapping holds the kinds it leaves out to zeros)."""
    named = tuple(declared) if isinstance(declared, Mapping) else ()
    merged = {kind: policy_for(declared, kind) for kind in (*keep, *named)}
    merged.update(observed)
    if len(set(merged.values())) == 1:
        return next(iter(merged.values()))
    return {kind: merged[kind] for kind in KINDS if merged.get(kind, DEFAULT_POLICY)
            != DEFAULT_POLICY}


def structural_kinds(lq: int, lk: int, *, is_causal: bool, window, alignment: str) -> np.ndarray:
    """(Lq,) per query row: ``causal`` or ``window`` when that alone (see the module
    docstring) leaves the row no key, else '' (only an attn_mask can empty it)."""
    pos = np.arange(lq) + (lk - lq if alignment == "bottom_right" else 0)
    low, high = np.zeros(lq, int), np.full(lq, lk - 1)
    if is_causal:
        high = np.minimum(high, pos)
    causal = high < low
    if window is not None:
        left, right = window
        if left is not None:
            low = np.maximum(low, pos - left)
        if right is not None:
            high = np.minimum(high, pos + right)
    kinds = np.full(lq, "", dtype=object)
    kinds[high < low] = "window"
    kinds[causal] = "causal"
    return kinds


def row_kinds(empty: np.ndarray, lk: int, mask: np.ndarray | None, *, is_causal: bool = False,
              window=None, alignment: str = "top_left") -> np.ndarray:
    """Per row (the shape of ``empty``, (..., Lq)): what hid it (one of KINDS), '' when the
    row is not empty. A row emptied by nothing that hides keys (Lk = 0) counts as causal."""
    structural = structural_kinds(empty.shape[-1], lk, is_causal=is_causal, window=window,
                                  alignment=alignment)
    by_mask = "causal" if mask is None else ("bool" if mask.dtype == bool else "float")
    kinds = np.where(structural == "", by_mask, structural)
    return np.where(empty, np.broadcast_to(kinds, empty.shape), "").astype(object)


def find(run: Callable[[str], np.ndarray], lse: np.ndarray, lk: int, mask: np.ndarray | None,
         *, is_causal: bool, window, alignment: str) -> EmptyRows | None:
    """The empty rows (``lse`` = −inf, from the reference under ``zeros``) with their kinds and
    ``run(policy)`` under every policy; None when no row is empty."""
    empty = np.isneginf(lse)
    if not empty.any():
        return None
    kinds = row_kinds(empty, lk, mask, is_causal=is_causal, window=window, alignment=alignment)
    return EmptyRows(kinds, {policy: run(policy) for policy in POLICIES})


@dataclass(frozen=True)
class EmptyRows:
    """The empty rows of one expected output and what the reference gives them under each
    policy: ``kinds`` (..., Lq) as ``row_kinds``; ``fills[policy]`` the whole float64 output
    computed under that policy (equal to each other outside the empty rows)."""

    kinds: np.ndarray
    fills: dict[str, np.ndarray]

    @property
    def empty(self) -> np.ndarray:
        return self.kinds != ""


def reference_rows(run: Callable[[str], np.ndarray], kinds: np.ndarray,
                   declared: str | Mapping[str, str]) -> tuple[np.ndarray, np.ndarray | None]:
    """(output, ignore): ``run(policy)`` (the reference under one policy) with each empty
    row taken from the run under the policy its kind is held to; ``ignore`` marks the rows
    held to ``any`` (as zeros), None when there are none."""
    policies = np.vectorize(lambda kind: policy_for(declared, kind) if kind else "",
                            otypes=[object])(kinds) if kinds.size else kinds
    out = run(DEFAULT_POLICY)
    for policy in sorted(set(policies.ravel()) - {"", DEFAULT_POLICY, "any"}):
        out = np.where((policies == policy)[..., None], run(policy), out)
    held_to_any = policies == "any"
    return out, (held_to_any[..., None] if held_to_any.any() else None)


def explain(actual: np.ndarray, expected: np.ndarray, bound: Bound, rows: EmptyRows | None,
            declared: str | Mapping[str, str], origin: str) -> str | None:
    """One line when every mismatch of ``actual`` lies on empty rows: the policy each kind's
    rows follow and the declaration that would accept them; None otherwise (or when the
    failure has nothing to do with empty rows)."""
    if rows is None or not rows.empty.any():
        return None
    if not compare(actual, expected, bound, rows.empty[..., None]).ok:
        return None  # rows with visible keys mismatch too: not about the convention
    seen = {}
    for kind in sorted(set(rows.kinds.ravel()) - {""}):
        others = (rows.kinds != kind)[..., None]
        seen[kind] = next((p for p in POLICIES
                           if compare(actual, rows.fills[p], bound, others).ok), "unrecognised")
    kinds = ", ".join(sorted(seen))
    recognised = {k: p for k, p in seen.items() if p != "unrecognised"}
    if len(recognised) < len(seen):
        return (f"the mismatches are confined to rows with no visible key (hidden by {kinds}); "
                f"they follow {seen}, none of the fully_masked policies {list(POLICIES)} "
                f"for {sorted(set(seen) - set(recognised))}")
    accepting = accepting_policy(declared, recognised)
    return (f"the mismatches are confined to rows with no visible key (hidden by {kinds}): "
            f"fully_masked: {origin} value {declared!r}, observed {recognised!r}; declare "
            f"conventions={{'fully_masked': {accepting!r}}} to accept it")


def explanation_origin(declared_conventions: Mapping[str, Any]) -> str:
    """'declared' or "default (torch's)", as the conventions probe words it."""
    return "declared" if "fully_masked" in declared_conventions else "default (torch's)"
