"""`harness proxy train|score`: the vote-trained preference proxy (unCLIP App. A) from the command line.

``train`` fits the probe on a study's votes (`harness.analyze.proxy.train_study_proxy`), prints its cross-validated accuracy
against the majority baseline and saves ``OUT.npz`` + ``OUT.json``; ``score`` prints f(x) of image files.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from harness.commands import add_command

_DB_HELP = "store URL (default: $HARNESS_DB_URL or the SQLite file under .harness/)"


def register(subparsers: Any) -> None:
    """Add the ``proxy`` subcommand."""
    p = add_command(
        subparsers,
        "proxy",
        description="A logistic-regression probe on image-feature differences trained on a study's votes "
        "(unCLIP App. A): P(prefer y over x) = σ(f(y) − f(x)).",
        epilog="Example: harness proxy train --study 1 --out proxies/photo; harness proxy score proxies/photo a.png",
    )
    p.set_defaults(func=run)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="fit on a study's votes, with k-fold cross-validation")
    train.add_argument("--study", required=True, help="study id or name")
    train.add_argument("--out", required=True, help="output stem: writes OUT.npz and OUT.json")
    train.add_argument("--extractor", default="auto", help="auto (toy CLIP, else pixels), toy-clip, pixels, clip:...")
    train.add_argument("--k", type=int, default=5, help="cross-validation folds (default 5)")
    train.add_argument("--seed", type=int, default=0, help="seed of the folds (default 0)")
    train.add_argument("--ties", choices=("half", "drop"), default="half", help="ties as half a win or dropped")
    train.add_argument("--C", dest="c", type=float, default=1.0, help="inverse L2 strength (default 1)")
    train.add_argument("--keep-all", action="store_true", help="do not apply the annotator exclusion policy")
    train.add_argument("--db", default=None, help=_DB_HELP)
    train.set_defaults(handler=run_train)
    score = actions.add_parser("score", help="f(x) of image files under a trained proxy")
    score.add_argument("proxy", help="the proxy's .npz/.json (or stem)")
    score.add_argument("images", nargs="+", help="image files")
    score.add_argument("--json", action="store_true", help="print JSON")
    score.set_defaults(handler=run_score)


def run(args: argparse.Namespace) -> int:
    return int(args.handler(args))


def run_train(args: argparse.Namespace) -> int:
    from harness.analyze.proxy import train_study_proxy
    from harness.commands.study import resolve_study
    from harness.storage.repository import Repository

    with Repository.open(args.db) as repo:
        study = resolve_study(repo, args.study)
        trained = train_study_proxy(repo, study.study_id, extractor=args.extractor, k=args.k, seed=args.seed,
                                    ties=args.ties, C=args.c, exclude=not args.keep_all)
    npz, meta = trained.proxy.save(args.out)
    cv = trained.cv
    print(f"proxy for {study.protocol_name} on {trained.proxy.feature_id}: {cv.k}-fold accuracy {cv.accuracy:.1%} "
          f"vs majority baseline {cv.baseline:.1%} over {cv.n_decisive} decisive votes")
    print(f"saved {npz} and {meta}")
    return 0


def run_score(args: argparse.Namespace) -> int:
    from eval_protocols.human.proxy import PreferenceProxy
    from harness.analyze.proxy import score_images
    from harness.errors import HarnessError

    try:
        proxy = PreferenceProxy.load(args.proxy)
    except ValueError as exc:
        raise HarnessError(str(exc)) from None
    values = score_images(proxy, args.images)
    if args.json:
        json.dump({str(f): float(v) for f, v in zip(args.images, values)}, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        for f, v in zip(args.images, values):
            print(f"{v:+.4f}\t{f}")
    return 0
