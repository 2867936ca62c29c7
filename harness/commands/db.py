"""``harness db``: migrate the store explicitly and show its schema revision.

Every command migrates the store it opens, so this is only needed to migrate a shared PostgreSQL ahead of
deploying a new app version (``harness db upgrade --url postgresql+psycopg://...``) or to check a store
(``harness db current``).
"""

from __future__ import annotations

import argparse

from harness import paths
from harness.commands import add_command
from harness.storage import migrate
from harness.storage.engine import mask_url


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``harness db upgrade`` and ``harness db current``."""
    parser = add_command(
        subparsers,
        "db",
        description="Manage the store's schema (SQLite file or PostgreSQL).",
        epilog="Example: harness db upgrade --url postgresql+psycopg://harness:PASSWORD@db.example:5432/harness",
    )
    actions = parser.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    url_help = "store URL (default: $HARNESS_DB_URL, else the SQLite file under the data dir)"
    upgrade = actions.add_parser("upgrade", help="migrate the store to the newest schema (or --revision)")
    upgrade.add_argument("--url", help=url_help)
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    upgrade.set_defaults(func=run)
    current = actions.add_parser("current", help="print the store's schema revision and the newest one")
    current.add_argument("--url", help=url_help)
    current.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``harness db ACTION``; returns the exit status."""
    url = args.url or paths.default_db_url()
    head = migrate.head_revision()
    if args.db_command == "upgrade":
        before, after = migrate.upgrade_store(url, args.revision)
        state = "already at" if before == after else f"upgraded from {before or 'empty'} to"
        print(f"{mask_url(url)}: {state} revision {after}")
        return 0
    current = migrate.store_revision(url)
    if current is not None and current not in migrate.known_revisions():
        note = f" (newer than this harness, whose newest is {head}: upgrade unclip-harness)"
    elif current != head:
        note = f" (run `harness db upgrade` to migrate to {head})"
    else:
        note = " (newest)"
    print(f"{current or 'empty'}{note}")
    return 0
