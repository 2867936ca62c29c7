"""`harness analyze VOTES_FILE`: win rates with intervals, sign tests and Bradley–Terry ratings from a vote file.

Reads a vote table (CSV, Parquet, or JSON as FastChat / GenAI-Arena write it), runs
`eval_protocols.human.analysis.analyze_votes` and prints a table per protocol, or the JSON document with
``--json``. Reading votes from the store will call the same pure function.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from eval_protocols.human.analysis import AnalysisOptions, AnalysisResult, analyze_votes
from eval_protocols.human.intervals import CI_METHODS, TIES_MODES
from eval_protocols.human.quality import ExclusionPolicy
from eval_protocols.human.votes import load_votes
from harness.errors import HarnessError


def register(subparsers: Any) -> None:
    """Add the ``analyze`` subcommand."""
    p = subparsers.add_parser(
        "analyze",
        help="win rates, intervals, p-values and Bradley–Terry ratings from a vote file",
        description="Analyse pairwise votes (columns model_a, model_b, winner; optional annotator, prompt, protocol, "
        "left). Ties count as half a win by default.",
        epilog="Example: harness analyze votes.csv --ci wilson --json",
    )
    p.add_argument("votes", metavar="VOTES_FILE", help="vote table: .csv, .parquet or .json")
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
        result = analyze_votes(load_votes(args.votes), options)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if args.json:
        json.dump(result.to_dict(), sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_result(result))
    return 0


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
