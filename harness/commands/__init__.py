"""One module per `harness` subcommand (see `harness.cli`), plus the flags several of them share."""

from __future__ import annotations

import argparse

DB_HELP = "store URL (default: $HARNESS_DB_URL or the SQLite file under .harness/)"


def add_config_arguments(
    parser: argparse.ArgumentParser, *, db: bool = True, progress: bool = True
) -> None:
    """``CONFIG``, ``--set KEY=VALUE`` and, optionally, ``--db URL`` and ``--no-progress``."""
    parser.add_argument("config", help="run config (TOML), e.g. configs/toy.toml")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help="override a key"
    )
    if db:
        parser.add_argument("--db", default=None, help=DB_HELP)
    if progress:
        parser.add_argument("--no-progress", action="store_true", help="hide progress bars")
