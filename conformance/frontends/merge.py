"""``attnconf merge REPORT.json ...``: the shards of one run as one verdict.

Each input is the JSON report of ``attnconf run --shard I/N``. They must be the N shards of
one run (same adapter, profile, seed, N; every I from 1 to N exactly once, no result in two
shards); anything else is a MergeError (exit 2) naming what is missing or mismatched. The
merged results are in the run's check order, and the verdict is computed from them exactly
as for an unsharded run (``results.verdict``); a run where any shard was interrupted is
interrupted. A shard records its ``--require`` without judging it (one shard does not see
every case); the merge judges it, with any ``--require`` given to merge itself, on the
merged results, whose ``features`` and ``dtype`` give the coverage an unsharded run gives.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from conformance.checks import CHECK_NAMES
from conformance.errors import MergeError as MergeError
from conformance.results import Result, RunInfo
from conformance.vocabulary import OPS

SAME_IN_EVERY_SHARD = ("adapter", "profile", "seed")


def _float(value: Any) -> float | None:
    """A report's number back as a float: strict JSON wrote inf/nan as strings."""
    return None if value is None else float(value) if not isinstance(value, str) else (
        math.inf if value == "inf" else -math.inf if value == "-inf" else math.nan)


def result_from_dict(data: dict[str, Any]) -> Result:
    fields: dict[str, Any] = {name: data.get(name) for name in Result.__dataclass_fields__
                              if name in data}
    fields["max_abs_err"] = _float(data.get("max_abs_err"))
    fields["bound"] = _float(data.get("bound"))
    fields["features"] = tuple(data.get("features") or ())
    fields["dtype"] = data.get("dtype") or ""
    return Result(**fields)


def load_report(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"report {path.resolve()} does not exist") from None
    except (OSError, ValueError) as exc:
        raise MergeError(f"report {path.resolve()} is not a JSON report: {exc}") from None
    if not isinstance(document, dict) or "results" not in document:
        raise MergeError(f"report {path.resolve()} is not an attnconf JSON report")
    return document


def _shard_of(document: dict[str, Any], path: Path) -> tuple[int, int]:
    shard = (document.get("settings") or {}).get("shard")
    if not shard:
        raise MergeError(f"report {path} is not a shard (run it with --shard I/N)")
    index, _, count = str(shard).partition("/")
    return int(index), int(count)


def _check_shards(documents: list[dict[str, Any]], paths: list[Path]) -> None:
    """MergeError unless the documents are the N shards of one run, each once."""
    first = documents[0]
    for document, path in zip(documents, paths, strict=True):
        for key in SAME_IN_EVERY_SHARD:
            if document.get(key) != first.get(key):
                raise MergeError(f"{path} has {key} {document.get(key)!r}, {paths[0]} has "
                                 f"{first.get(key)!r}: not shards of one run")
    shards = [_shard_of(d, p) for d, p in zip(documents, paths, strict=True)]
    counts = {n for _, n in shards}
    if len(counts) != 1:
        raise MergeError(f"the reports split the run differently: N in {sorted(counts)}")
    (n,) = counts
    indices = [i for i, _ in shards]
    missing = sorted(set(range(1, n + 1)) - set(indices))
    twice = sorted({i for i in indices if indices.count(i) > 1})
    if missing or twice:
        raise MergeError(f"need each of the {n} shards once: "
                         + "; ".join(filter(None, (
                             f"missing {', '.join(f'{i}/{n}' for i in missing)}" if missing
                             else "", f"given twice {twice}" if twice else ""))))


def _order(r: Result) -> tuple[int, int]:
    """A result's place in an unsharded run: the check table's order, then the op's."""
    check = CHECK_NAMES.index(r.check) if r.check in CHECK_NAMES else len(CHECK_NAMES)
    return check, OPS.index(r.op) if r.op in OPS else len(OPS)


def _require(documents: list[dict[str, Any]], paths: list[Path], extra: tuple[str, ...]
             ) -> list[str]:
    """The --require of the shards (the same in each: MergeError otherwise), then ``extra``
    (merge's own --require), each name once: the merged verdict judges them."""
    given = [list((d.get("settings") or {}).get("require") or ()) for d in documents]
    for names, path in zip(given, paths, strict=True):
        if names != given[0]:
            raise MergeError(f"{path} has --require {names or 'none'}, {paths[0]} has "
                             f"{given[0] or 'none'}: not shards of one run")
    return list(dict.fromkeys([*given[0], *extra]))


def merge_reports(paths: list[Path], require: tuple[str, ...] = ()
                  ) -> tuple[list[Result], RunInfo]:
    """The merged results and a RunInfo for the whole run (shard cleared, sources listed);
    its ``require`` is the shards' (which a shard records but does not judge) and
    ``require``."""
    if not paths:
        raise MergeError("give the JSON reports of the shards to merge")
    documents = [load_report(p) for p in paths]
    _check_shards(documents, paths)
    results = sorted((result_from_dict(r) for d in documents for r in d["results"]),
                     key=_order)
    seen: set[tuple[str, str, str]] = set()
    for r in results:
        key = (r.op, r.check, r.case)
        if key in seen and r.case not in ("-", "check-error"):
            raise MergeError(f"result {r.op}/{r.check} {r.case} is in two shards: not one split")
        seen.add(key)
    first = documents[0]
    settings = dict(first.get("settings") or {})
    all_settings = [d.get("settings") or {} for d in documents]
    settings.update(
        shard=None, merged_from=[str(p) for p in paths],
        require=_require(documents, paths, require),
        interrupted=any(s.get("interrupted") for s in all_settings),
        started=min((s.get("started") or "" for s in all_settings), default=""),
        duration_s=max((float(s.get("duration_s") or 0) for s in all_settings), default=0.0),
        stopped_early="; ".join(s["stopped_early"] for s in all_settings
                                if s.get("stopped_early")) or None)
    observed: dict[str, Any] = {}
    for d in documents:
        observed.update((d.get("conventions") or {}).get("observed") or {})
    info = RunInfo(adapter=first["adapter"], profile=first["profile"], seed=first["seed"],
                   kit_version=first.get("kit_version", "unknown"),
                   versions=first.get("versions") or {}, conventions=observed,
                   declared=(first.get("conventions") or {}).get("declared") or {},
                   settings=settings)
    return results, info
