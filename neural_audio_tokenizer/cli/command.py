"""What every ``nat`` command shares: one-line usage errors, and NatError as one line + exit code.

A command is a ``run(argv) -> exit code`` function and a parser made by :func:`parser`;
:func:`main` runs it so that a user's mistake never shows a traceback (docs/errors.md).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from ..errors import EXIT_USAGE, NatError


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit 2, with no usage dump."""

    def __init__(self, *args, label: str = "", **kwargs) -> None:
        kwargs.setdefault("formatter_class", argparse.RawDescriptionHelpFormatter)
        super().__init__(*args, **kwargs)
        self.label = label

    def error(self, message: str):
        print(f"nat: {self.label}{message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def parser(prog: str, description: str, epilog: str | None = None, label: str = "") -> Parser:
    """A command's parser; ``label`` (e.g. ``"diff: "``) prefixes its one-line errors."""
    return Parser(prog=prog, description=description, epilog=epilog, label=label)


def main(run: Callable[[list[str]], int], argv: list[str] | None, label: str = "") -> int:
    """Run a command on ``argv`` (default: the process's); a NatError becomes
    ``nat: <label><message>`` on stderr and its exit code."""
    try:
        return run(list(sys.argv[1:] if argv is None else argv))
    except NatError as exc:
        print(f"nat: {label}{exc}", file=sys.stderr)
        return exc.exit_code
