"""`harness plan --win-rate 0.55 --power 0.8`: decisive votes a pairwise study needs, and what n votes buy."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from typing import Any

from eval_protocols.human.power import plan_study
from harness.commands import add_command
from harness.errors import HarnessError


def register(subparsers: Any) -> None:
    """Add the ``plan`` subcommand."""
    p = add_command(
        subparsers,
        "plan",
        description="Decisive votes for a two-sided test of a 50%% win rate (normal approximation and exact sign "
        "test), and the interval half-width a given number of votes buys.",
        epilog="Example: harness plan --win-rate 0.55 --power 0.8   (about 783 decisive votes)",
    )
    p.add_argument("--win-rate", type=float, required=True, help="true win rate to detect, e.g. 0.55")
    p.add_argument("--power", type=float, default=0.8, help="target power (default 0.8)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    p.add_argument("--n", type=int, default=None, help="also report half-width and power at N decisive votes")
    p.add_argument("--tie-rate", type=float, default=0.0, help="expected share of ties, to size the total votes")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Compute and print the plan."""
    try:
        plan = plan_study(args.win_rate, args.power, args.alpha, n=args.n, tie_rate=args.tie_rate)
    except ValueError as exc:
        raise HarnessError(str(exc)) from exc
    if args.json:
        json.dump(dataclasses.asdict(plan), sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    out = [
        f"win rate {plan.win_rate:.1%} vs 50%, power {plan.power:.0%}, alpha {plan.alpha:g} (two-sided):",
        f"  decisive votes, normal approximation: {plan.n_normal}",
        f"  decisive votes, exact sign test:      {plan.n_exact} (power stays above target from n = {plan.n_exact_stable})",
    ]
    if plan.tie_rate > 0:
        out.append(f"  total votes at {plan.tie_rate:.0%} ties:          {plan.total_votes_normal}")
    if plan.n is not None:
        out.append(
            f"  at n = {plan.n}: ±{plan.half_width:.1%} half-width ({1 - plan.alpha:.0%} normal interval), "
            f"power {plan.power_at_n_normal:.1%} (normal), {plan.power_at_n_exact:.1%} (exact)"
        )
    sys.stdout.write("\n".join(out) + "\n")
    return 0
