"""One call from a vote table to everything `harness analyze` prints: `analyze_votes(votes, options)`.

Order of work: validate → (optional) exclusion policy, which also drops attention-check rows → per protocol:
pair win rates with intervals and sign tests, Bradley–Terry ratings with bootstrap intervals, position bias
(when sides are known) → Holm correction over all pairs of all protocols (one family per report).
Pure: the same votes and options give the same result, bit for bit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval_protocols.human import intervals as iv
from eval_protocols.human.bradley_terry import BTRatings, bradley_terry
from eval_protocols.human.quality import (
    Exclusion,
    ExclusionPolicy,
    PositionBias,
    apply_exclusion_policy,
    position_bias,
)
from eval_protocols.human.votes import normalize_votes, ordinary_votes, protocols_of, validate_votes
from eval_protocols.human.winrates import WinRate, win_rates


@dataclass(frozen=True)
class AnalysisOptions:
    """Settings of `analyze_votes` (the `harness analyze` flags)."""

    ties: iv.TiesMode = "half"
    """``half`` (a tie is half a win for each side; GLIDE/unCLIP) or ``drop``."""
    ci: str = "normal"
    """Interval of the win rates: ``normal`` (paper), ``wilson``, ``exact`` or ``bootstrap``."""
    level: float = 0.95
    n_bootstrap: int = 1000
    """Replicates for bootstrap win-rate intervals and Bradley–Terry intervals (0: no BT intervals)."""
    seed: int = 0
    protocol: str | None = None
    """Only this protocol (None: all)."""
    cluster_by: tuple[str, ...] | None = None
    """Bootstrap clusters (None: prompt and annotator where present)."""
    baseline: str | None = None
    """System always placed second in pairs."""
    bt_C: float | None = None
    """L2 strength of the BT fit (scikit-learn C; None = plain maximum likelihood)."""
    side_term: bool = False
    """Fit a position term in BT (needs ``left``)."""
    exclusion: ExclusionPolicy | None = None
    """Annotator exclusion applied first (None: only attention-check rows are dropped)."""

    def __post_init__(self) -> None:
        if self.ties not in iv.TIES_MODES:
            raise ValueError(f"unknown ties mode '{self.ties}'; use half or drop")
        if self.ci not in iv.CI_METHODS:
            raise ValueError(f"unknown interval '{self.ci}'; use one of {', '.join(iv.CI_METHODS)}")
        if self.n_bootstrap < 0 or (self.ci == "bootstrap" and self.n_bootstrap < 1):
            raise ValueError(f"n_bootstrap = {self.n_bootstrap}; use a positive number such as 1000")


@dataclass(frozen=True)
class ProtocolAnalysis:
    """Results of one protocol."""

    protocol: str
    n_votes: int
    win_rates: tuple[WinRate, ...]
    ratings: BTRatings
    position_bias: PositionBias | None


@dataclass(frozen=True)
class AnalysisResult:
    """Everything `harness analyze` reports."""

    options: AnalysisOptions
    protocols: tuple[ProtocolAnalysis, ...]
    n_votes_in: int
    """Votes in the input table (attention checks included)."""
    excluded: tuple[Exclusion, ...]
    """Annotators removed by the exclusion policy, with reasons."""

    def to_dict(self) -> dict[str, object]:
        """JSON-ready nested dict (the `harness analyze --json` document)."""
        opts = dataclasses.asdict(self.options)
        return {
            "options": opts,
            "n_votes_in": self.n_votes_in,
            "excluded": [{"annotator": e.annotator, "reasons": list(e.reasons)} for e in self.excluded],
            "protocols": [
                {
                    "protocol": p.protocol,
                    "n_votes": p.n_votes,
                    "pairs": [w.to_dict() for w in p.win_rates],
                    "bradley_terry": p.ratings.to_dict(),
                    "position_bias": None if p.position_bias is None else _clean(dataclasses.asdict(p.position_bias)),
                }
                for p in self.protocols
            ],
        }


def _clean(d: dict[str, object]) -> dict[str, object]:
    """Replace NaN floats by None for JSON."""
    return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in d.items()}


def analyze_votes(votes: pd.DataFrame, options: AnalysisOptions = AnalysisOptions()) -> AnalysisResult:
    """Win rates, intervals, p-values (raw and Holm), BT ratings and position bias per protocol.

    Args:
        votes: a vote table (validated here).
        options: see `AnalysisOptions`.

    Returns:
        `AnalysisResult`, protocols sorted by name.

    Raises:
        ValueError: invalid votes, or ``options.protocol`` absent from the table.
    """
    votes = validate_votes(normalize_votes(votes))
    n_in = len(votes)
    excluded: tuple[Exclusion, ...] = ()
    if options.exclusion is not None:
        result = apply_exclusion_policy(votes, options.exclusion)
        votes, excluded = ordinary_votes(result.votes), result.excluded
    else:
        votes = ordinary_votes(votes)
    protocol = protocols_of(votes)
    if options.protocol is not None:
        if options.protocol not in set(protocol):
            known = ", ".join(sorted(set(protocol))) or "none"
            raise ValueError(f"protocol '{options.protocol}' has no votes; protocols in the table: {known}")
        votes, protocol = votes[protocol == options.protocol], protocol[protocol == options.protocol]
    if len(votes) == 0:
        raise ValueError("no votes left after dropping attention checks and excluded annotators; relax the policy")
    rates = win_rates(
        votes,
        ties_mode=options.ties,
        ci=options.ci,
        level=options.level,
        n_bootstrap=options.n_bootstrap,
        seed=options.seed,
        cluster_by=options.cluster_by,
        baseline=options.baseline,
    )
    bias = {b.protocol: b for b in position_bias(votes, level=options.level)} if "left" in votes.columns else {}
    out = []
    for name in sorted(set(protocol)):
        sub = votes[(protocol == name).to_numpy()]
        ratings = bradley_terry(
            sub,
            C=options.bt_C,
            side_term=options.side_term,
            n_bootstrap=options.n_bootstrap,
            seed=options.seed,
            level=options.level,
        )
        out.append(
            ProtocolAnalysis(name, len(sub), tuple(w for w in rates if w.protocol == name), ratings, bias.get(name))
        )
    return AnalysisResult(options, tuple(out), n_in, excluded)
