"""`harness analyze VOTES_FILE | --study ID | --run CONFIG`: win rates, sign tests and Bradley–Terry ratings.

Reads a vote table (CSV, Parquet, or JSON as FastChat / GenAI-Arena write it), or the votes of a study (or of every
study of a run) from the store (`harness.analyze.vote_table`: attention-check votes serve quality control only), runs
`eval_protocols.human.analysis.analyze_votes` and prints a table per protocol, or the JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import pandas as pd

from eval_protocols.human.analysis import AnalysisOptions, AnalysisResult, analyze_votes
from eval_protocols.human.intervals import CI_METHODS, TIES_MODES
from eval_protocols.human.quality import ExclusionPolicy
from eval_protocols.human.votes import load_votes
from harness.commands import add_command
from harness.errors import HarnessError


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = add_command(
        subparsers,
        "analyze",
        description="Analyse pairwise votes (columns model_a, model_b, winner; optional annotator, prompt, protocol, "
        "left). Ties count as half a win by default.",
        epilog="Examples: harness analyze votes.csv --ci wilson --json; harness analyze --study 1 --json; "
        "harness analyze --run configs/toy.toml --exclude",
    )
    p.add_argument("votes", metavar="VOTES_FILE", nargs="?", help="vote table: .csv, .parquet or .json")
    p.add_argument("--study", metavar="ID", help="analyse the votes of this study in the store (id or name)")
    p.add_argument("--run", metavar="CONFIG", help="analyse the votes of every study of this run config")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the --run config")
    p.add_argument("--db", default=None, help="store URL (default: $HARNESS_DB_URL or the SQLite file under .harness/)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--ties", choices=TIES_MODES, default="half", help="ties as half a win (default) or dropped")
    p.add_argument(
        "--ci", choices=CI_METHODS, default="normal", help="win-rate interval (default: normal, as in unCLIP)"
    )
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N", help="bootstrap replicates (default 1000)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seed of every bootstrap (default 0)")
    p.add_argument("--protocol", metavar="P", help="analyse only this protocol")
    p.add_argument("--baseline", metavar="SYSTEM", help="report pairs as P(system beats SYSTEM)")
    p.add_argument("--level", type=float, default=0.95, help="confidence level (default 0.95)")
    p.add_argument("--C", dest="bt_c", type=float, default=None, help="L2 strength of the BT fit (sklearn's C)")
    p.add_argument("--side-term", action="store_true", help="fit a left/right position term in Bradley–Terry")
    p.add_argument("--exclude", action="store_true", help="apply the default annotator exclusion policy first")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Load, analyse and print; bad input becomes a one-line `HarnessError`."""
    try:
        options = AnalysisOptions(
            ties=args.ties,
            ci=args.ci,
            level=args.level,
            n_bootstrap=args.bootstrap,
            seed=args.seed,
            protocol=args.protocol,
            baseline=args.baseline,
            bt_C=args.bt_c,
            side_term=args.side_term,
            exclusion=ExclusionPolicy() if args.exclude else None,
        )
        result = analyze_votes(_votes(args), options)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_result(result))
    return 0


def _votes(args: argparse.Namespace) -> pd.DataFrame:
    """The vote table named by exactly one of VOTES_FILE, ``--study`` and ``--run``."""
    given = [name for name, value in (("VOTES_FILE", args.votes), ("--study", args.study), ("--run", args.run)) if value]
    if len(given) != 1:
        raise HarnessError(
            f"give exactly one vote source (got {', '.join(given) or 'none'}): a VOTES_FILE, --study ID or --run CONFIG"
        )
    if args.votes:
        return load_votes(args.votes)
    from harness.analyze.vote_table import run_study_ids, votes_of_studies
    from harness.storage.repository import Repository

    if args.study:
        from harness.commands.study import resolve_study

        with Repository.open(args.db) as repo:
            study_ids = [resolve_study(repo, args.study).study_id]
            votes = votes_of_studies(repo, study_ids)
        where = f"study {args.study}"
    else:
        from harness.config import RunConfig, load_config

        cfg: RunConfig = load_config(args.run, args.overrides)
        with Repository.open(args.db or cfg.db_url or None) as repo:
            votes = votes_of_studies(repo, run_study_ids(repo, cfg.run_id, cfg.study.name))
        where = f"run {cfg.run_id}"
    if len(votes) == 0:
        raise HarnessError(f"{where} has no votes yet; invite annotators (`harness study invite`) and let them vote")
    return votes


def format_result(result: AnalysisResult) -> str:
    """Human-readable tables, one block per protocol."""
    o = result.options
    ties = "ties as half a win" if o.ties == "half" else "ties dropped"
    lines = []
    for p in result.protocols:
        lines.append(f"protocol {p.protocol}: {p.n_votes} votes; {ties}; {o.level:.0%} {o.ci} intervals")
        width = max([len(w.system_a) for w in p.win_rates] + [len(w.system_b) for w in p.win_rates] + [8])
        lines.append(
            f"  {'system':<{width}}  {'vs':<{width}}  {'wins':>6} {'losses':>6} {'ties':>6}  {'win rate':>8}"
            f"  {'interval':<17} {'p':>8} {'p Holm':>8}"
        )
        for w in p.win_rates:
            lines.append(
                f"  {w.system_a:<{width}}  {w.system_b:<{width}}  {w.wins:>6} {w.losses:>6} {w.ties:>6}"
                f"  {w.win_rate:>8.1%}  [{w.ci_low:6.1%}, {w.ci_high:6.1%}] {w.p_value:>8.2g} {w.p_value_holm:>8.2g}"
            )
        r = p.ratings
        boot = f", {r.n_bootstrap} bootstrap replicates" if r.n_bootstrap else ""
        lines.append(f"  Bradley–Terry ratings (Elo scale{boot}):")
        for i, (name, rating) in enumerate(zip(r.systems, r.ratings)):
            ci = f"  [{r.ci_low[i]:.1f}, {r.ci_high[i]:.1f}]" if r.ci_low and r.ci_high else ""
            lines.append(f"    {i + 1:>2}. {name:<{width}} {rating:8.1f}{ci}")
        if not r.converged:
            lines.append("    warning: no finite maximum-likelihood ratings (a group of systems never lost); use --C 1")
        if r.side_advantage is not None:
            lines.append(f"    left-side advantage: {r.side_advantage:+.1f} Elo")
        b = p.position_bias
        if b is not None and b.decisive:
            lines.append(
                f"  position bias: left won {b.left_win_rate:.1%} of {b.decisive} decisive votes "
                f"([{b.ci_low:.1%}, {b.ci_high:.1%}], p = {b.p_value:.3g})"
            )
        lines.append("")
    for e in result.excluded:
        lines.append(f"excluded annotator {e.annotator}: {'; '.join(e.reasons)}")
    return "\n".join(lines).rstrip("\n") + "\n"
