"""Annotator quality, position bias, inter-annotator agreement and the exclusion policy.

Everything here codes outcomes by *system*, never by screen side: a unit (protocol, prompt, unordered pair
{A, B}, A alphabetically first) has the categories 0 = A wins, 1 = B wins, 2 = tie, whichever side A was shown on.

- Position bias: share of decisive votes won by the left-shown system, with Wilson interval and sign test.
- Attention checks: rows with an ``expected`` answer; pass rate per annotator.
- Agreement with the leave-one-out majority: for each vote on a unit with other votes, does it match the
  strict majority of the *other* votes on that unit?
- Response times: a vote is fast when its ``latency_ms`` is below ``fast_fraction`` × the median latency.
- Krippendorff's α (nominal) and Fleiss' κ per protocol over units with ≥ 2 votes.
- `ExclusionPolicy`: which annotators to drop before win rates; `apply_exclusion_policy` returns the filtered
  votes and who was excluded, and why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval_protocols.human import intervals as iv
from eval_protocols.human.votes import left_sign, ordinary_votes, orient, protocols_of, require_columns


@dataclass(frozen=True)
class PositionBias:
    """Share of decisive votes won by the system shown on the left, for one protocol."""

    protocol: str
    left_wins: int
    """Decisive votes won by the left-shown system."""
    decisive: int
    """Decisive votes with a known side."""
    left_win_rate: float
    """left_wins / decisive (½ = no bias)."""
    ci_low: float
    """Wilson lower bound."""
    ci_high: float
    """Wilson upper bound."""
    p_value: float
    """Two-sided exact binomial test against ½."""


@dataclass(frozen=True)
class AnnotatorQuality:
    """Quality indicators of one annotator (NaN where the data do not allow the indicator)."""

    annotator: str
    n_votes: int
    """Ordinary (non-check) votes."""
    attention_checks: int
    """Attention-check rows answered."""
    attention_passed: int
    """Checks answered as expected."""
    attention_pass_rate: float
    """attention_passed / attention_checks."""
    agreement_votes: int
    """Votes on units where the other votes have a strict majority."""
    majority_agreement: float
    """Share of those votes equal to the leave-one-out majority."""
    median_latency_ms: float
    """Median response time."""
    fast_share: float
    """Share of votes faster than ``fast_fraction`` × the median latency of all votes."""


@dataclass(frozen=True)
class Agreement:
    """Inter-annotator agreement of one protocol over units (prompt, pair) with at least two votes."""

    protocol: str
    krippendorff_alpha: float
    """Nominal α = 1 − D_o/D_e (coincidence-matrix form)."""
    fleiss_kappa: float
    """κ = (P̄ − P̄_e)/(1 − P̄_e); per-unit P_i uses its own vote count n_i (Fleiss when all n_i are equal)."""
    n_units: int
    """Units with ≥ 2 votes."""
    n_votes: int
    """Votes on those units."""


@dataclass(frozen=True)
class ExclusionPolicy:
    """Which annotators to exclude before computing win rates. ``None`` switches a criterion off."""

    min_attention_pass_rate: float | None = 0.8
    """Exclude annotators passing fewer attention checks than this share."""
    min_attention_checks: int = 3
    """Annotators with fewer checks are not judged on the pass rate (one lapse must not exclude anyone)."""
    min_majority_agreement: float | None = None
    """Exclude annotators agreeing with the leave-one-out majority less often than this."""
    min_agreement_votes: int = 10
    """Annotators with fewer comparable votes are not judged on agreement."""
    max_fast_share: float | None = 0.5
    """Exclude annotators with a larger share of implausibly fast votes."""
    fast_fraction: float = 0.25
    """A vote is fast when latency < fast_fraction × median latency of all votes."""
    drop_attention_checks: bool = True
    """Remove the attention-check rows themselves from the returned votes."""


@dataclass(frozen=True)
class Exclusion:
    """One excluded annotator and the reasons."""

    annotator: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class ExclusionResult:
    """Votes left after the policy, and the record of who was excluded."""

    votes: pd.DataFrame
    excluded: tuple[Exclusion, ...]
    annotators: tuple[AnnotatorQuality, ...]
    policy: ExclusionPolicy


def position_bias(votes: pd.DataFrame, *, level: float = 0.95) -> tuple[PositionBias, ...]:
    """Left-win rate per protocol over decisive votes whose side is known (needs the ``left`` column)."""
    require_columns(votes, ["left"], "position bias")
    votes = ordinary_votes(votes)
    side = left_sign(votes)
    winner = votes["winner"].to_numpy()
    decisive = (winner != "tie") & (side != 0)
    left_won = decisive & (((winner == "model_a") & (side > 0)) | ((winner == "model_b") & (side < 0)))
    frame = pd.DataFrame({"protocol": protocols_of(votes).to_numpy(), "d": decisive, "w": left_won})
    sums = frame.groupby("protocol", sort=True)[["w", "d"]].sum()
    wins, n = sums["w"].to_numpy(), sums["d"].to_numpy()
    low, high = iv.wilson_interval(wins, n, level=level)
    p = iv.sign_test(wins, n - wins)
    return tuple(
        PositionBias(
            str(proto),
            int(wins[i]),
            int(n[i]),
            float(wins[i] / n[i]) if n[i] else float("nan"),
            float(low[i]),
            float(high[i]),
            float(p[i]),
        )
        for i, proto in enumerate(sums.index)
    )


def outcome_codes(votes: pd.DataFrame) -> pd.DataFrame:
    """Unit key and system-coded outcome per vote.

    Returns:
        Columns ``unit`` (protocol, prompt, system_a, system_b joined), ``protocol`` and ``code``
        (0 = system_a wins, 1 = system_b wins, 2 = tie); same index as ``votes``.
    """
    require_columns(votes, ["prompt"], "agreement statistics")
    o = orient(votes)
    code = np.select([o["score"] == 1.0, o["score"] == 0.0], [0, 1], 2)
    unit = (
        o["protocol"].astype(str)
        + "\x1f"
        + votes["prompt"].astype(str)
        + "\x1f"
        + o["system_a"]
        + "\x1f"
        + o["system_b"]
    )
    return pd.DataFrame({"unit": unit, "protocol": o["protocol"], "code": code}, index=votes.index)


def unit_category_counts(codes: pd.DataFrame) -> pd.DataFrame:
    """Units × categories vote counts (columns 0, 1, 2), indexed by (protocol, unit)."""
    counts = codes.groupby(["protocol", "unit", "code"]).size().unstack("code", fill_value=0)
    return counts.reindex(columns=[0, 1, 2], fill_value=0)


def krippendorff_alpha_nominal(counts: np.ndarray) -> float:
    """Nominal Krippendorff's α from a units × categories count matrix.

    Coincidences o_ck = Σ_u (n_uc n_uk − [c = k] n_uc)/(m_u − 1) over units with m_u ≥ 2 values;
    n_c = Σ_k o_ck, n = Σ_c n_c; α = 1 − (n − 1)·(n − Σ_c o_cc)/(n² − Σ_c n_c²).
    """
    counts = np.asarray(counts, dtype=np.float64)
    m = counts.sum(axis=1)
    counts = counts[m >= 2]
    m = m[m >= 2]
    if counts.size == 0:
        return float("nan")
    o = np.einsum("uc,uk->ck", counts / (m - 1.0)[:, None], counts) - np.diag((counts / (m - 1.0)[:, None]).sum(0))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    expected = n * n - float(n_c @ n_c)
    if expected == 0:
        return float("nan")
    return float(1.0 - (n - 1.0) * (n - np.trace(o)) / expected)


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' κ from a units × categories count matrix (units with ≥ 2 votes).

    P_i = (Σ_j n_ij² − n_i)/(n_i(n_i − 1)), P̄ = mean_i P_i, p_j = Σ_i n_ij / Σ_i n_i, P̄_e = Σ_j p_j²,
    κ = (P̄ − P̄_e)/(1 − P̄_e). Equals ``statsmodels.stats.inter_rater.fleiss_kappa`` when all n_i are equal.
    """
    counts = np.asarray(counts, dtype=np.float64)
    n_i = counts.sum(axis=1)
    counts, n_i = counts[n_i >= 2], n_i[n_i >= 2]
    if counts.size == 0:
        return float("nan")
    p_i = ((counts**2).sum(axis=1) - n_i) / (n_i * (n_i - 1.0))
    p_j = counts.sum(axis=0) / n_i.sum()
    p_e = float(p_j @ p_j)
    if p_e == 1.0:
        return float("nan")
    return float((p_i.mean() - p_e) / (1.0 - p_e))


def agreement(votes: pd.DataFrame) -> tuple[Agreement, ...]:
    """Krippendorff's α and Fleiss' κ per protocol, outcomes coded by system (needs ``prompt``)."""
    counts = unit_category_counts(outcome_codes(ordinary_votes(votes)))
    out = []
    for proto, table in counts.groupby(level="protocol", sort=True):
        arr = table.to_numpy()
        multi = arr.sum(axis=1) >= 2
        out.append(
            Agreement(
                str(proto), krippendorff_alpha_nominal(arr), fleiss_kappa(arr), int(multi.sum()), int(arr[multi].sum())
            )
        )
    return tuple(out)


def leave_one_out_agreement(votes: pd.DataFrame) -> pd.Series:
    """Per vote: 1.0 if it equals the strict majority of the other votes on its unit, 0.0 if not, NaN if no majority."""
    codes = outcome_codes(votes)
    onehot = np.eye(3)[codes["code"].to_numpy()]
    totals = pd.DataFrame(onehot, index=codes.index).groupby(codes["unit"].to_numpy()).transform("sum").to_numpy()
    others = totals - onehot
    best = others.max(axis=1)
    strict = (others == best[:, None]).sum(axis=1) == 1
    valid = strict & (best > 0)
    agree = others[np.arange(len(others)), codes["code"].to_numpy()] == best
    return pd.Series(np.where(valid, agree.astype(np.float64), np.nan), index=votes.index)


def annotator_quality(votes: pd.DataFrame, *, fast_fraction: float = 0.25) -> tuple[AnnotatorQuality, ...]:
    """Attention-check pass rate, leave-one-out agreement and response-time indicators per annotator."""
    require_columns(votes, ["annotator"], "annotator quality")
    annot = votes["annotator"].astype(str)
    ordinary = ordinary_votes(votes)
    checks = votes.drop(ordinary.index) if "expected" in votes.columns else votes.iloc[:0]
    frame = pd.DataFrame(index=sorted(annot.unique()))
    frame["n_votes"] = annot[ordinary.index].value_counts()
    frame["checks"] = annot[checks.index].value_counts()
    frame["passed"] = annot[checks.index][_check_passed(checks)].value_counts()
    if "prompt" in votes.columns and len(ordinary):
        agree = leave_one_out_agreement(ordinary)
        frame["agree_n"] = agree.notna().groupby(annot[ordinary.index]).sum()
        frame["agree"] = agree.groupby(annot[ordinary.index]).mean()
    if "latency_ms" in votes.columns:
        lat = pd.to_numeric(votes["latency_ms"], errors="coerce")
        fast = (lat < fast_fraction * lat.median()).astype(float).where(lat.notna())
        frame["latency"] = lat.groupby(annot).median()
        frame["fast"] = fast.groupby(annot).mean()
    frame = frame.reindex(columns=["n_votes", "checks", "passed", "agree_n", "agree", "latency", "fast"])
    frame[["n_votes", "checks", "passed", "agree_n"]] = frame[["n_votes", "checks", "passed", "agree_n"]].fillna(0)
    return tuple(
        AnnotatorQuality(
            annotator=str(name),
            n_votes=int(r.n_votes),
            attention_checks=int(r.checks),
            attention_passed=int(r.passed),
            attention_pass_rate=float(r.passed / r.checks) if r.checks else float("nan"),
            agreement_votes=int(r.agree_n),
            majority_agreement=float(r.agree),
            median_latency_ms=float(r.latency),
            fast_share=float(r.fast),
        )
        for name, r in frame.iterrows()
    )


def _check_passed(checks: pd.DataFrame) -> np.ndarray:
    """Whether each attention-check row's winner matches ``expected`` (a winner value or a system id)."""
    expected = checks["expected"].astype(str).to_numpy()
    expected = np.where(expected == checks["model_a"].astype(str).to_numpy(), "model_a", expected)
    expected = np.where(expected == checks["model_b"].astype(str).to_numpy(), "model_b", expected)
    passed: np.ndarray = expected == checks["winner"].astype(str).to_numpy()
    return passed


def apply_exclusion_policy(votes: pd.DataFrame, policy: ExclusionPolicy = ExclusionPolicy()) -> ExclusionResult:
    """Drop the votes of annotators failing ``policy`` (and, by default, the attention-check rows).

    Without an ``annotator`` column nobody can be excluded; only the check rows are dropped.

    Returns:
        `ExclusionResult` with the remaining votes, the excluded annotators with reasons, and every
        annotator's indicators.
    """
    keep = ordinary_votes(votes) if policy.drop_attention_checks else votes
    if "annotator" not in votes.columns:
        return ExclusionResult(keep, (), (), policy)
    quality = annotator_quality(votes, fast_fraction=policy.fast_fraction)
    excluded = tuple(e for e in (_judge(q, policy) for q in quality) if e.reasons)
    dropped = {e.annotator for e in excluded}
    keep = keep[~keep["annotator"].astype(str).isin(dropped).to_numpy()]
    return ExclusionResult(keep, excluded, quality, policy)


def _judge(q: AnnotatorQuality, policy: ExclusionPolicy) -> Exclusion:
    """Reasons (possibly none) why ``policy`` excludes the annotator behind ``q``."""
    reasons = []
    if (
        policy.min_attention_pass_rate is not None
        and q.attention_checks >= max(policy.min_attention_checks, 1)
        and q.attention_pass_rate < policy.min_attention_pass_rate
    ):
        reasons.append(
            f"attention checks {q.attention_passed}/{q.attention_checks} passed < {policy.min_attention_pass_rate:.0%}"
        )
    if (
        policy.min_majority_agreement is not None
        and q.agreement_votes >= policy.min_agreement_votes
        and q.majority_agreement < policy.min_majority_agreement
    ):
        reasons.append(f"majority agreement {q.majority_agreement:.0%} < {policy.min_majority_agreement:.0%}")
    if policy.max_fast_share is not None and q.fast_share > policy.max_fast_share:
        reasons.append(
            f"{q.fast_share:.0%} of votes faster than {policy.fast_fraction:.0%} of the median time "
            f"(limit {policy.max_fast_share:.0%})"
        )
    return Exclusion(q.annotator, tuple(reasons))
