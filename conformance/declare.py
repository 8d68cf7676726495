"""``conformance.adapter(...)``: declare what an implementation is and supports.

    @conformance.adapter(name="mine", features={"causal", "gqa"},
                         conventions={"fully_masked": "uniform"})
    def my_attention(query, key, value, attn_mask=None, is_causal=False, ...): ...

The declaration is plain data stored on the object (``__attnconf__``); it is
read when the run is configured, never at import time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

OPS = (
    "sdpa",
    "sdpa_backward",
    "multi_head_attention",
    "rotary_embedding",
    "alibi_slopes",
    "relative_attention",
    "additive_attention",
    "decode_step",
    "sdpa_varlen",
    "paged_attention",
)

FEATURES = (
    "bool_mask",
    "float_mask",
    "causal",
    "bottom_right",
    "gqa",
    "scale",
    "window",
    "softcap",
    "alibi",
    "sinks",
    "dropout",
    "lse",
    "mask_with_causal",
)

DTYPES = ("float64", "float32", "float16", "bfloat16")

CONVENTIONS = {
    "causal_alignment": ("top_left", "bottom_right"),
    "fully_masked": ("zeros", "nan", "uniform", "any"),
    "masked_nonfinite": ("ignored", "propagates"),
}

# torch's behaviour: what a plain callable (torch's signature) is held to.
DEFAULT_CONVENTIONS = {
    "causal_alignment": "top_left",
    "fully_masked": "zeros",
    "masked_nonfinite": "propagates",
}

# What can hide every key of a row, the keys of a ``fully_masked`` mapping (the rule that
# attributes a row to one of them: conformance/empty_rows.py). A kind left out is zeros.
MASK_KINDS = ("bool", "float", "causal", "window")
MASK_KIND_MEANINGS = ("'bool' (a bool attn_mask hid the row), 'float' (-inf in a float "
                      "attn_mask), 'causal' (is_causal alone: bottom_right with Lq > Lk), "
                      "'window' (the window alone)")


@dataclass(frozen=True)
class Declaration:
    """What ``conformance.adapter(...)`` recorded. ``None`` = not declared."""

    name: str | None = None
    framework: Any = "numpy"
    device: str = "cpu"
    dtypes: tuple[str, ...] | None = None
    features: frozenset[str] | None = None
    conventions: Mapping[str, Any] = field(default_factory=dict)


def _check_policy_mapping(value: Mapping[str, Any]) -> dict[str, str]:
    """A ``fully_masked`` mapping, checked: keys MASK_KINDS, values the single policies."""
    allowed = CONVENTIONS["fully_masked"]
    unknown = [k for k in value if k not in MASK_KINDS]
    if unknown:
        raise ValueError(f"fully_masked mapping: unknown key(s) {unknown}; the keys say what "
                         f"hid the row: {MASK_KIND_MEANINGS}; a key left out means 'zeros'")
    bad = {k: v for k, v in value.items() if not isinstance(v, str) or v not in allowed}
    if bad:
        raise ValueError(f"fully_masked mapping: value(s) {bad} not one of {list(allowed)}")
    return dict(value)


def _check_conventions(conventions: Mapping[str, Any]) -> dict[str, Any]:
    """The declared conventions, checked; a ValueError (one line) names what is wrong."""
    if not isinstance(conventions, Mapping):
        raise ValueError(f"conventions must be a mapping such as "
                         f"{{'causal_alignment': 'bottom_right'}}, got {conventions!r:.80}")
    checked = {}
    for key, value in conventions.items():
        if key not in CONVENTIONS:
            raise ValueError(f"unknown convention {key!r}; known: {sorted(CONVENTIONS)}")
        allowed = CONVENTIONS[key]
        if key == "fully_masked" and isinstance(value, Mapping):
            checked[key] = _check_policy_mapping(value)
            continue
        if not isinstance(value, str) or value not in allowed:
            mapping = (f", or a mapping from {list(MASK_KINDS)} to one of them"
                       if key == "fully_masked" else "")
            raise ValueError(f"convention {key} must be one of {list(allowed)}{mapping}, "
                             f"got {value!r:.80}")
        checked[key] = value
    return checked


def _check_names(kind: str, given: Iterable[str] | None, known: tuple[str, ...]):
    if given is None:
        return None
    given = tuple(given)
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; known: {list(known)}")
    return given


def adapter(
    target: Any = None,
    *,
    name: str | None = None,
    framework: Any = "numpy",
    device: str = "cpu",
    dtypes: Iterable[str] | None = None,
    features: Iterable[str] | None = None,
    conventions: Mapping[str, Any] | None = None,
):
    """Attach a :class:`Declaration` to ``target`` (a callable, object or module).

    Usable as ``adapter(obj, name=...)`` or as a decorator ``@adapter(name=...)``.
    The declaration is stored on ``target`` itself and ``target`` is returned (as
    ``functools.wraps``-free decorators do): to declare a shared function twice, wrap
    it first. Unknown feature, dtype or convention names raise ValueError at once.
    """
    dtype_names = _check_names("dtypes", dtypes, DTYPES)
    feature_names = _check_names("features", features, FEATURES)
    declaration = Declaration(
        name=name,
        framework=framework,
        device=device,
        dtypes=dtype_names,
        features=None if feature_names is None else frozenset(feature_names),
        conventions=_check_conventions(conventions or {}),
    )

    def attach(obj: Any) -> Any:
        obj.__attnconf__ = declaration
        return obj

    return attach if target is None else attach(target)


def declaration_of(obj: Any) -> Declaration:
    """The declaration attached to ``obj``, or the empty one (torch's defaults)."""
    return getattr(obj, "__attnconf__", None) or Declaration()
