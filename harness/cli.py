"""The `harness` command line: one subcommand per pipeline step.

Each subcommand lives in its own module under `harness/commands/` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (``args -> int`` exit status). The parser
knows every command by name and help line (`harness.commands.COMMANDS`) and imports only the module of the command
that runs, so ``harness --help`` and light commands start in a fraction of a second, without torch.
User-caused errors (`harness.errors.HarnessError`) print one line, ``error: ...``, and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from harness import __version__
from harness.commands import COMMANDS, add_lazily
from harness.errors import HarnessError

GLOBAL_FLAGS = ("--debug", "-v", "--verbose")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The top-level parser: every command by name and help line, and the full parser of the one ``argv`` names.

    Only that command's module is imported (`harness.commands.add_lazily`); the others are placeholders that show
    in ``harness --help``.
    """
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Generate, measure and human-evaluate text-to-image diffusion models (unCLIP, GLIDE, yours).",
        epilog="Example: harness run configs/toy.toml   (see README.md for the full workflow)",
    )
    parser.add_argument("--version", action="version", version=f"unclip-harness {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    add_lazily(sub, COMMANDS, [w for w in argv if w not in GLOBAL_FLAGS])
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harness`` console script; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except HarnessError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted; finished work is kept and a rerun resumes from it", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
