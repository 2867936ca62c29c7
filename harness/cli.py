"""The `harness` command line: one subcommand per pipeline step.

Each subcommand lives in its own module under `harness/commands/` and exposes
``register(subparsers) -> None``, which adds its parser and sets ``func`` (``args -> int`` exit status).
User-caused errors (`harness.errors.HarnessError`) print one line, ``error: ...``, and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from harness import __version__
from harness.errors import HarnessError

# Order is the order of `harness --help`. Only commands that work are listed.
COMMAND_MODULES: tuple[str, ...] = (
    "harness.commands.run",
    "harness.commands.toy",
    "harness.commands.train",
    "harness.commands.generate",
    "harness.commands.manipulate",
    "harness.commands.score",
    "harness.commands.metrics",
    "harness.commands.study",
    "harness.commands.analyze",
    "harness.commands.plan",
    "harness.commands.report",
    "harness.commands.regress",
    "harness.commands.proxy",
    "harness.commands.app",
    "harness.commands.db",
)


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every available subcommand."""
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Generate, measure and human-evaluate text-to-image diffusion models (unCLIP, GLIDE, yours).",
        epilog="Example: harness run configs/toy.toml   (see README.md for the full workflow)",
    )
    parser.add_argument("--version", action="version", version=f"unclip-harness {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:  # a command module not written yet is simply not offered
            if exc.name == name:
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``harness`` console script; returns the process exit status."""
    parser = build_parser()
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
