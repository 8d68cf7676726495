"""Reports: terminal summary, JSON, JUnit XML and Markdown, written atomically.

A report is written to a temporary file beside its target and renamed into
place, so a run killed mid-way never leaves a truncated file that CI would
parse as a pass.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections import defaultdict
from pathlib import Path
from xml.etree import ElementTree as ET

from conformance.judging.tolerance import DEFAULT_K
from conformance.results import (
    ERROR,
    EXIT_CONFORMANT,
    FAILED,
    PASSED,
    SKIPPED,
    Result,
    RunInfo,
    axis_counts,
    coverage,
    diagnosis,
    expand_require,
    failure_groups,
    judged_require,
    require_problem,
    skip_reasons,
    summary,
    unsupported_axes,
    verdict_word,
)
from conformance.results import run_verdict as verdict

FORMATS = ("json", "junit", "md")


def parse_report_spec(spec: str) -> tuple[str, Path]:
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in FORMATS or not path:
        raise ValueError(f"--report must be FORMAT:PATH with FORMAT in {FORMATS}, got {spec!r}")
    return fmt, Path(path)


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        mask = os.umask(0o022)
        os.umask(mask)
        os.fchmod(fd, 0o666 & ~mask)  # as open() would create it, not mkstemp's 0600
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(value):
    """Strict JSON has no NaN/Infinity: a non-finite float is written as "inf", "-inf", "nan"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def overrides(info: RunInfo) -> dict[str, float]:
    """The tolerance and timeout settings the user changed from their defaults (k, atol,
    timeout), in the order a command line gives them."""
    settings = info.settings
    found = {}
    if settings.get("k") is not None and settings["k"] != DEFAULT_K:
        found["k"] = settings["k"]
    for name in ("atol", "timeout"):
        if settings.get(name) is not None:
            found[name] = settings[name]
    return found


def overrides_text(info: RunInfo) -> str:
    """``k=3, atol=1e-05, timeout=5 s`` for the overridden settings, "" when none is."""
    return ", ".join(f"{name}={value:g}{' s' if name == 'timeout' else ''}"
                     for name, value in overrides(info).items())


def counts_line(results: list[Result], info: RunInfo) -> str:
    """``P passed, F failed, S skipped[, E errors][ (overridden: …)]``: the summary line."""
    counts = summary(results)
    line = f"{counts[PASSED]} passed, {counts[FAILED]} failed, {counts[SKIPPED]} skipped"
    if counts.get("errors"):
        line += f", {counts['errors']} errors"
    shard = info.settings.get("shard")
    line += f" (shard {shard})" if shard else ""
    changed = overrides_text(info)
    line = f"{line} (overridden: {changed})" if changed else line
    stopped = info.settings.get("stopped_early")  # --maxfail: what did not run is not counted
    return f"{line}; {stopped}" if stopped else line


def verdict_line(results: list[Result], info: RunInfo) -> str:
    """The verdict in words. Conformant, it says what was exercised: ``CONFORMANT on P of T
    cases`` (passed of all results), ``; unsupported: NAMES`` for each declared feature or
    dtype whose every case was skipped (``results.unsupported_axes``), and ``; required:
    NAMES`` as --require gave them (on one shard: judged by ``attnconf merge``). Otherwise
    the word and its one-line reason: ``NOT CONFORMANT (3 failed)``."""
    code, reason = verdict(results, info)
    if code != EXIT_CONFORMANT:
        return f"{verdict_word(code)} ({reason})"
    line = f"CONFORMANT on {summary(results)[PASSED]} of {len(results)} cases"
    missing = unsupported_axes(coverage(axis_counts(results), info.declared))
    line += f"; unsupported: {', '.join(missing)}" if missing else ""
    require = info.settings.get("require") or ()
    if require and not judged_require(info):
        return f"{line}; --require {' '.join(require)} is judged by `attnconf merge`"
    return f"{line}; required: {', '.join(require)}" if require else line


def coverage_document(results: list[Result], info: RunInfo) -> dict:
    """The JSON report's ``coverage`` (each declared feature and dtype: exercised = passed +
    failed, unsupported = skipped, and the skip causes) and ``require`` (the names as given,
    as expanded, judged or not, and the problem, null when none)."""
    counts = axis_counts(results)
    require = tuple(info.settings.get("require") or ())
    covered = coverage(counts, info.declared)
    return {"coverage": {name: c.as_dict() for name, c in covered.items()},
            "unsupported": unsupported_axes(covered),
            "require": {"names": list(require),
                        "expanded": list(expand_require(require, info.declared, counts)),
                        "judged": bool(judged_require(info)),
                        "problem": require_problem(counts, judged_require(info), info.declared)}}


def _result_dict(r: Result) -> dict:
    """The DESIGN keys (and seed) always; ``examples`` on property results, ``traceback`` on
    internal errors only, ``features`` and ``dtype`` on cases of known axes only."""
    found = r.as_dict()
    if r.examples is None:
        del found["examples"]
    if not r.traceback:
        del found["traceback"]
    if not r.dtype:
        del found["features"], found["dtype"]
    return found


def to_json(results: list[Result], info: RunInfo) -> str:
    code, reason = verdict(results, info)
    document = {
        "adapter": info.adapter, "profile": info.profile, "seed": info.seed,
        "kit_version": info.kit_version, "versions": info.versions,
        "conventions": {"observed": info.conventions, "declared": info.declared},
        "settings": info.settings, "overrides": overrides(info), "summary": summary(results),
        "verdict": reason, "verdict_line": verdict_line(results, info), "exit_code": code,
        **coverage_document(results, info),
        "interrupted": bool(info.settings.get("interrupted")),
        "skip_reasons": [{"check": c, "reason": why, "count": n}
                         for c, why, n in skip_reasons(results)],
        "failure_groups": [{"cause": cause, "count": n, "first": f"{r.op}/{r.check} {r.case}"}
                           for cause, n, r in failure_groups(results) if n > 1],
        "results": [_result_dict(r) for r in results],
    }
    return json.dumps(_json_safe(document), indent=2, allow_nan=False, default=str) + "\n"


_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _xml_text(text: str) -> str:
    """``text`` without the characters XML 1.0 cannot hold (an adapter's message may have them)."""
    return _XML_ILLEGAL.sub("\ufffd", text)


def to_junit(results: list[Result], info: RunInfo) -> str:
    """pytest's layout: ``<testsuites>`` around one ``<testsuite>`` with ``timestamp`` and
    ``time`` (the run's start and wall time); a failure's ``message`` is its diagnosis (see
    ``results.diagnosis``), its text the whole message; each skip reason and its count is a
    suite property, as ``-rs`` would list it."""
    counts = summary(results)
    totals = {"tests": str(len(results)), "failures": str(counts[FAILED]),
              "skipped": str(counts[SKIPPED]), "errors": str(counts.get("errors", 0)),
              "time": f"{float(info.settings.get('duration_s') or 0.0):.3f}"}
    root = ET.Element("testsuites", {"name": "attnconf", **totals})
    suite = ET.SubElement(root, "testsuite", {"name": f"attnconf[{info.adapter}]", **totals,
                                              "timestamp": str(info.settings.get("started") or "")})
    properties = ET.SubElement(suite, "properties")
    tolerance = [(name, info.settings.get(name)) for name in ("k", "atol", "timeout")]
    for key, value in (("seed", info.seed), ("profile", info.profile),
                       ("kit_version", info.kit_version), *info.versions.items(), *tolerance,
                       ("overridden", overrides_text(info) or "none"),
                       ("shard", info.settings.get("shard") or "none"),
                       ("verdict", verdict_line(results, info)),
                       *((f"skipped: {c}: {why}", n) for c, why, n in skip_reasons(results))):
        ET.SubElement(properties, "property", name=_xml_text(str(key)),
                      value=_xml_text(str(value)))
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"{r.op}.{r.check}", name=r.case)
        message = _xml_text(r.message)
        if r.status == FAILED:
            ET.SubElement(case, "failure", message=_xml_text(diagnosis(r))).text = message
        elif r.status == SKIPPED:
            ET.SubElement(case, "skipped", message=message)
        elif r.status == ERROR:
            ET.SubElement(case, "error", type="attnconf-internal-error",
                          message=message.splitlines()[0]).text = _xml_text(r.traceback)
    return ET.tostring(root, encoding="unicode") + "\n"


def table(results: list[Result]) -> list[tuple[str, str, int, int, int, str]]:
    """Rows (op, check, passed, failed, skipped, first skip reason) in run order; a check's
    internal errors of the kit are said in place of the reason."""
    grouped: dict[tuple[str, str], list[Result]] = defaultdict(list)
    for r in results:
        grouped[(r.op, r.check)].append(r)
    rows = []
    for (op, check), rs in grouped.items():
        counts = summary(rs)
        reason = next((r.message for r in rs if r.status == SKIPPED), "")
        if counts.get("errors"):
            reason = f"{counts['errors']} internal error(s) of the kit"
        rows.append((op, check, counts[PASSED], counts[FAILED], counts[SKIPPED], reason))
    return rows


def conventions_lines(info: RunInfo) -> list[str]:
    """What each convention is held to (declared, or torch's default) and what was probed."""
    declared = info.declared.get("conventions", {})
    lines = []
    for name in ("causal_alignment", "fully_masked", "masked_nonfinite"):
        observed = info.conventions.get(name, "not probed")
        lines.append(f"  {name:17} expected {declared.get(name)!r:28} observed {observed!r}")
    return lines


def errors_text(results: list[Result]) -> list[str]:
    """Each internal error of the kit: its message and traceback."""
    lines = []
    for r in (r for r in results if r.status == ERROR):
        lines += ["", "ERROR (internal error of the kit) " + r.message, r.traceback.rstrip()]
    return lines


SHOWN_FAILURES = 20


def explained_lines(results: list[Result]) -> list[str]:
    """Failures that share one diagnosis, said once with their count, and every skip reason
    with its count (pytest's ``-rs``): the terminal's and the Markdown report's summary."""
    lines = [f"{n} failures share one cause: {cause} (first: {r.op}/{r.check} {r.case})"
             for cause, n, r in failure_groups(results) if n > 1]
    lines += [f"SKIPPED [{n}] {check}: {why}" for check, why, n in skip_reasons(results)]
    return lines


def shown_failures(results: list[Result]) -> list[Result]:
    """The failures to print in full: each whose diagnosis is its own, and only the first of
    those that share one (the rest are counted in ``explained_lines``)."""
    shared = {diagnosis(r) for _, n, r in failure_groups(results) if n > 1}
    shown, seen = [], set()
    for r in (r for r in results if r.status == FAILED):
        cause = diagnosis(r) if r.max_abs_err is None or r.bound is None else None
        if cause in shared:
            if cause in seen:
                continue
            seen.add(cause)
        shown.append(r)
    return shown


def to_text(results: list[Result], info: RunInfo) -> str:
    changed = overrides_text(info)
    lines = [f"attnconf: adapter {info.adapter} · profile {info.profile} · seed {info.seed}"
             + (f" · overridden: {changed}" if changed else ""), ""]
    lines.append(f"  {'op':22} {'check':18} {'passed':>6} {'failed':>6} {'skipped':>7}")
    for op, check, p, f, s, reason in table(results):
        why = f"  ({reason[:70]})" if reason and not p and not f else ""
        lines.append(f"  {op:22} {check:18} {p:6d} {f:6d} {s:7d}{why}")
    lines += ["", "conventions:", *conventions_lines(info)]
    failures = shown_failures(results)
    for r in failures[:SHOWN_FAILURES]:
        lines += ["", "FAILED " + r.message]
    if len(failures) > SHOWN_FAILURES:
        lines.append(f"\n… and {len(failures) - SHOWN_FAILURES} more failures "
                     f"(see the JSON report)")
    lines += errors_text(results)
    explained = explained_lines(results)
    lines += ["", "short summary:", *explained] if explained else []
    lines += ["", counts_line(results, info), f"verdict: {verdict_line(results, info)}"]
    return "\n".join(lines) + "\n"


def to_markdown(results: list[Result], info: RunInfo) -> str:
    changed = overrides_text(info)
    lines = [f"# attnconf report: `{info.adapter}`", "",
             f"profile `{info.profile}`, seed `{info.seed}`, kit {info.kit_version}"
             + (f", overridden: {changed}" if changed else ""), "",
             f"**{counts_line(results, info)}** — {verdict_line(results, info)}", "",
             "| op | check | passed | failed | skipped |", "|---|---|---|---|---|"]
    lines += [f"| {o} | {c} | {p} | {f} | {s} |" for o, c, p, f, s, _ in table(results)]
    lines += ["", "## Conventions", "", "```", *conventions_lines(info), "```"]
    explained = explained_lines(results)
    if explained:
        lines += ["", "## Summary", "", *(f"- {line}" for line in explained)]
    failures = shown_failures(results)
    if failures:
        lines += ["", "## Failures", ""]
        for r in failures:
            lines += [f"<details><summary>{r.op}/{r.check} {r.case}: {diagnosis(r)}"
                      f"</summary>", "", "```", r.message, "```", "", "</details>", ""]
    errors = [r for r in results if r.status == ERROR]
    if errors:
        lines += ["", "## Internal errors of the kit (not the adapter's failures)", ""]
        for r in errors:
            lines += ["```", r.message, "", r.traceback.rstrip(), "```", ""]
    return "\n".join(lines) + "\n"


RENDERERS = {"json": to_json, "junit": to_junit, "md": to_markdown}


def write_report(spec: str, results: list[Result], info: RunInfo) -> Path:
    fmt, path = parse_report_spec(spec)
    write_atomic(path, RENDERERS[fmt](results, info))
    return path


__all__ = [
    "FORMATS",
    "parse_report_spec",
    "to_json",
    "to_junit",
    "to_markdown",
    "to_text",
    "write_atomic",
    "write_report",
]
