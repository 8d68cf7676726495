"""``attnconf fixtures verify|regen [--root DIR]``.

``verify`` exits 0 when every fixture matches its manifest, 1 otherwise, printing one
line per problem that names the file (hash mismatch, missing, extra, unreadable
manifest). ``regen`` is the only way fixtures change: it regenerates everything under
the root from the generators in ``conformance.fixtures.generate`` and prints what changed.
Without ``--root`` both act on the fixtures shipped with the installed kit.

Standalone: ``python -m conformance.frontends.fixtures_cli verify|regen [--root DIR]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from conformance.fixtures.store import default_root, verify


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("verify", "regen"),
                        help="verify: check every file against its manifest; "
                             "regen: rewrite the fixtures from their generators")
    parser.add_argument("--root", type=Path, default=None,
                        help="fixtures directory (default: the fixtures shipped with the kit)")


def add_fixtures_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``fixtures verify|regen [--root DIR]`` to an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "fixtures", help="verify or regenerate the golden fixtures",
        description="Verify (sha256 against the manifests) or regenerate the golden fixtures.")
    _add_arguments(parser)
    parser.set_defaults(handler=run_fixtures)
    return parser


def run_fixtures(args: argparse.Namespace) -> int:
    root = args.root if args.root is not None else default_root()
    if args.action == "verify":
        problems = verify(root)
        for line in problems:
            print(line)
        if problems:
            print(f"{len(problems)} problem(s) under {root}")
            return 1
        print(f"fixtures OK: {root}")
        return 0
    from conformance.fixtures.generate import regenerate  # imports the reference; only for regen

    changes = regenerate(root)
    for line in changes:
        print(line)
    print(f"{len(changes)} file(s) changed under {root}" if changes
          else f"fixtures unchanged: {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance.frontends.fixtures_cli",
                                     description=__doc__.splitlines()[0])
    _add_arguments(parser)
    return run_fixtures(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
