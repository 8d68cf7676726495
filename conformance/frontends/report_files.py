"""Report files: all of them or none, never an earlier run's, any text safe in any format.

``prepare(specs)`` runs before the run: it checks every ``--report FORMAT:PATH``
(format known, no path given twice, its directory writable) and removes the
reports an earlier run left at those paths, so a run that stops before its end
leaves no stale verdict for CI to read. ``write_all`` renders every report
first, writes each to a temporary file beside its target, and only then renames
them all into place; should anything fail, every target and temporary file is
removed. Text from the adapter (exception messages hold lone surrogates from
``os.fsdecode`` and control characters) is made safe once, before rendering,
by ``safe_text``; ``print_safely`` prints on a terminal of any encoding.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tempfile
from pathlib import Path
from typing import Any, TextIO

from conformance.frontends.report import RENDERERS, parse_report_spec
from conformance.results import Result, RunInfo

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")


def safe_text(text: str) -> str:
    """``text`` with lone surrogates written ``\\udcff`` and control characters other than
    tab and newline written ``\\x1b``: valid UTF-8, legal XML 1.0, inert on a terminal."""
    if not isinstance(text, str):
        return text
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return _CONTROL.sub(lambda m: m[0].encode("unicode_escape").decode("ascii"), text)


def _safe(value: Any) -> Any:
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {safe_text(k) if isinstance(k, str) else k: _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_safe(v) for v in value)
    return value


def safe_results(results: list[Result], info: RunInfo) -> tuple[list[Result], RunInfo]:
    """Copies of ``results`` and ``info`` whose every string is ``safe_text``."""
    def fix(record):
        return dataclasses.replace(record, **{
            f.name: _safe(getattr(record, f.name)) for f in dataclasses.fields(record)})

    return [fix(r) for r in results], fix(info)


def _check_writable(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(prefix=".attnconf-probe-", dir=directory)
    os.close(fd)
    os.unlink(probe)


def prepare(specs: list[str]) -> list[tuple[str, Path]]:
    """The (format, path) targets, checked and cleared before the run. ValueError (one line)
    for a malformed spec, a path given twice or a directory that cannot be written."""
    targets = [parse_report_spec(spec) for spec in specs]
    seen: dict[Path, str] = {}
    for fmt, path in targets:
        real = path.resolve()
        if real in seen:
            raise ValueError(f"--report {fmt}:{path} and {seen[real]}:{path} name the same "
                             f"file: give each format its own path")
        seen[real] = fmt
        if path.is_dir():
            raise ValueError(f"--report {fmt}:{path}: is a directory")
        try:
            _check_writable(path.parent)
        except OSError as exc:
            raise ValueError(f"--report {fmt}:{path}: cannot write in {path.parent.resolve()} "
                             f"({exc.strerror or exc})") from None
    for _, path in targets:
        try:
            path.unlink(missing_ok=True)  # an earlier run's verdict must not outlive this run
        except OSError as exc:
            raise ValueError(f"--report {path}: cannot remove the earlier report "
                             f"({exc.strerror or exc})") from None
    return targets


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _write_temporary(path: Path, text: str) -> str:
    """``text`` (UTF-8) in a new file beside ``path``, mode 0666 less the umask; its name."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return tmp


def write_all(targets: list[tuple[str, Path]], results: list[Result], info: RunInfo
              ) -> list[Path]:
    """Every report, or none: rendered, written beside its target, then renamed into place.
    On any failure every target and temporary file is removed and the exception re-raised."""
    results, info = safe_results(results, info)
    written: list[tuple[str, Path]] = []
    try:
        texts = [(path, RENDERERS[fmt](results, info)) for fmt, path in targets]
        for path, text in texts:
            path.parent.mkdir(parents=True, exist_ok=True)
            written.append((_write_temporary(path, text), path))
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in written:
            Path(tmp).unlink(missing_ok=True)
        for _, path in targets:
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
        raise
    return [path for _, path in targets]


def print_safely(stream: TextIO, text: str) -> None:
    """Write ``text`` to ``stream`` whatever its encoding: what it cannot encode is written
    as backslash escapes (a strict ASCII or UTF-8 stdout would raise UnicodeEncodeError)."""
    encoding = getattr(stream, "encoding", None) or "utf-8"
    try:
        stream.write(text)
    except UnicodeEncodeError:
        stream.write(text.encode(encoding, "backslashreplace").decode(encoding, "replace"))
    stream.flush()


__all__ = ["prepare", "print_safely", "safe_results", "safe_text", "write_all"]
