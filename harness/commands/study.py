"""`harness study create|list|open|close|invite|export`: human studies in the store, from the command line.

``create`` designs one study per protocol of a generated run's config (`harness.study.design.create_studies`);
``invite`` prints invite links ``BASE/?token=TOKEN`` (tokens are shown once: the store keeps only their hash);
``open``/``close`` switch whether a study accepts votes; ``export`` writes a study's votes as a vote table
(CSV, Parquet or JSON; attention-check votes carry their ``expected`` answer). ``STUDY`` is a study id or a study's exact name.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from harness.commands import DB_HELP, add_command
from harness.errors import HarnessError

if TYPE_CHECKING:
    from harness.storage.records import StudyRecord
    from harness.storage.repository import Repository

DEFAULT_BASE_URL = "http://localhost:8501"

def register(sub: Any) -> None:
    p = add_command(
        sub,
        "study",
        description="Manage the pairwise human studies in the store. Annotators vote in the app (`harness app`) "
        "through invite links.",
        epilog="Example: harness study invite 1 --n 5 --name rater --base-url http://evalbox:8501",
    )
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser("create", help="design and store the studies of a generated run's config")
    create.add_argument("config", help="the run config the images were generated with, e.g. configs/toy.toml")
    create.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a key")
    create.add_argument("--name", default=None,
                        help="name this set of studies (<run id>/NAME/<protocol>): a second study of the run, e.g. "
                        "with other --set study.* settings (same as --set study.name=NAME)")
    create.add_argument("--db", default=None, help=DB_HELP)
    create.set_defaults(handler=run_create)

    listing = actions.add_parser("list", help="list studies with status and progress")
    listing.add_argument("--db", default=None, help=DB_HELP)
    listing.set_defaults(handler=run_list)

    for action, status in (("open", "open"), ("close", "closed")):
        sp = actions.add_parser(action, help=f"{action} a study for votes")
        sp.add_argument("study", help="study id or name")
        sp.add_argument("--db", default=None, help=DB_HELP)
        sp.set_defaults(handler=run_status, status=status)

    invite = actions.add_parser("invite", help="create annotators and print their invite links")
    invite.add_argument("study", help="study id or name")
    invite.add_argument("--n", type=int, default=1, help="how many invite links (default 1)")
    invite.add_argument("--name", default="annotator", help="label of the annotator(s); numbered when --n > 1")
    invite.add_argument("--base-url", default=DEFAULT_BASE_URL, help=f"where the app is reached (default {DEFAULT_BASE_URL})")
    invite.add_argument("--db", default=None, help=DB_HELP)
    invite.set_defaults(handler=run_invite)

    export = actions.add_parser("export", help="write a study's votes as a vote table (.csv, .parquet, .json)")
    export.add_argument("study", help="study id or name")
    export.add_argument("--out", required=True, help="output file: votes.csv, votes.parquet or votes.json")
    export.add_argument("--db", default=None, help=DB_HELP)
    export.set_defaults(handler=run_export)


def invite_url(base_url: str, token: str) -> str:
    """``BASE/?token=TOKEN``.

    Raises:
        HarnessError: ``base_url`` is not an http(s) URL with a host.
    """
    parts = urlsplit(base_url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise HarnessError(
            f"--base-url {base_url!r} is not an http(s) URL of the app; use e.g. {DEFAULT_BASE_URL} or http://HOST:PORT"
        )
    return f"{base_url.strip().rstrip('/')}/?token={token}"


def resolve_study(repo: Repository, ref: str) -> StudyRecord:
    """The study named by id or exact name.

    Raises:
        HarnessError: no such study.
    """
    study = repo.get_study(int(ref)) if ref.strip().isdigit() else repo.find_study(ref)
    if study is None:
        known = ", ".join(f"{s.study_id} ({s.name})" for s in repo.list_studies()[:10]) or "none"
        raise HarnessError(f"study {ref!r} does not exist (known: {known}); list studies with `harness study list`")
    return study


def run(args: argparse.Namespace) -> int:
    """Dispatch to the chosen action's handler."""
    return int(args.handler(args))


def run_create(args: argparse.Namespace) -> int:
    from harness.config import load_config
    from harness.pipeline import open_generated_run
    from harness.study.design import create_studies

    overrides = [*args.overrides, *([f"study.name={json.dumps(args.name)}"] if args.name else [])]
    cfg = load_config(args.config, overrides)
    run_dir, entries, prompts, repo = open_generated_run(cfg, args.db)
    with repo:
        studies = create_studies(cfg, run_dir, entries, prompts, repo)
        for s in studies:
            print(f"study {s.study_id}: {s.name} ({s.protocol_name}, {s.status})")
    print("invite annotators with: harness study invite STUDY_ID --n N")
    return 0


def run_list(args: argparse.Namespace) -> int:
    from harness.storage.repository import Repository

    with Repository.open(args.db) as repo:
        studies = repo.list_studies()
        if not studies:
            print("no studies; create them with `harness study create CONFIG` or `harness run CONFIG`")
            return 0
        print(f"{'id':>4}  {'status':<7} {'protocol':<20} {'votes':>13} {'annotators':>10}  name")
        for s in studies:
            p = repo.progress(s.study_id)
            votes = f"{p.votes}/{p.votes_target}"
            print(f"{s.study_id:>4}  {s.status:<7} {s.protocol_name:<20} {votes:>13} {len(p.annotators):>10}  {s.name}")
    return 0


def run_status(args: argparse.Namespace) -> int:
    from harness.storage.repository import Repository

    with Repository.open(args.db) as repo:
        study = repo.set_study_status(resolve_study(repo, args.study).study_id, args.status)
    print(f"study {study.study_id} ({study.name}) is {study.status}")
    return 0


def run_invite(args: argparse.Namespace) -> int:
    from harness.storage.repository import Repository

    if args.n < 1:
        raise HarnessError(f"--n {args.n}: give at least 1 invite")
    invite_url(args.base_url, "")  # validate before creating anyone
    with Repository.open(args.db) as repo:
        study = resolve_study(repo, args.study)
        for k in range(args.n):
            name = args.name if args.n == 1 else f"{args.name}-{k + 1}"
            record, token = repo.create_annotator(study.study_id, name)
            print(f"{record.name}\t{invite_url(args.base_url, token)}")
    if study.status != "open":
        print(f"note: study {study.study_id} is {study.status}; open it with `harness study open {study.study_id}`",
              file=sys.stderr)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from harness.analyze.vote_table import study_vote_table, write_votes
    from harness.storage.repository import Repository

    with Repository.open(args.db) as repo:
        votes = study_vote_table(repo, resolve_study(repo, args.study).study_id)
    write_votes(votes, args.out)
    print(f"{len(votes)} votes written to {args.out}")
    return 0
