"""Win rates per system pair and protocol, with intervals, sign tests and Holm correction.

For each protocol and unordered pair {A, B} (A the alphabetically first system, or the non-baseline one when a
baseline is named) the votes give W (A wins), L (B wins) and T (ties). The win rate P(A beats B) is
(W + T/2)/n with ties as half (GLIDE/unCLIP, the default) or W/(W + L) with ties dropped; its interval comes
from `eval_protocols.human.intervals`; the p-value is the two-sided sign test on the decisive votes (ties carry no
information about who is better); Holm's correction runs over every comparison returned together.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval_protocols.human import intervals as iv
from eval_protocols.human.votes import orient

CLUSTER_COLUMNS: tuple[str, ...] = ("prompt", "annotator")


@dataclass(frozen=True)
class WinRate:
    """P(system_a beats system_b) under one protocol, with its interval and test."""

    protocol: str
    """Protocol (question) the votes answer."""
    system_a: str
    """The system whose win rate is reported."""
    system_b: str
    """Its opponent."""
    wins: int
    """Votes for system_a (W)."""
    losses: int
    """Votes for system_b (L)."""
    ties: int
    """Tie / "Not sure" votes (T)."""
    win_rate: float
    """(W + T/2)/(W + L + T) with ties as half, W/(W + L) with ties dropped."""
    ci_low: float
    """Lower bound of the interval."""
    ci_high: float
    """Upper bound of the interval."""
    p_value: float
    """Two-sided exact sign test of W against W + L decisive votes at ½."""
    p_value_holm: float
    """``p_value`` after Holm's correction over all comparisons computed together."""
    ties_mode: str
    """``"half"`` or ``"drop"``."""
    ci_method: str
    """``normal``, ``wilson``, ``exact`` or ``bootstrap``."""
    level: float
    """Confidence level of the interval, e.g. 0.95."""
    cluster_by: tuple[str, ...] = ()
    """Columns the bootstrap resampled by (empty: i.i.d. votes or a closed-form interval)."""

    @property
    def n(self) -> int:
        """Votes behind the win rate: W + L + T (half) or W + L (drop)."""
        return self.wins + self.losses + (self.ties if self.ties_mode == "half" else 0)

    def to_dict(self) -> dict[str, object]:
        """Plain JSON-ready dict (NaN becomes None)."""
        out = dataclasses.asdict(self)
        out["n"] = self.n
        out["cluster_by"] = list(self.cluster_by)
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in out.items()}


def pair_counts(votes: pd.DataFrame, *, baseline: str | None = None) -> pd.DataFrame:
    """Wins, losses and ties per (protocol, system_a, system_b).

    Args:
        votes: a validated vote table.
        baseline: if given, always the second system of its pairs.

    Returns:
        A frame with columns ``protocol, system_a, system_b, wins, losses, ties`` sorted by protocol and pair.
    """
    o = orient(votes, baseline)
    o = o.assign(wins=(o["score"] == 1.0).astype(int), losses=(o["score"] == 0.0).astype(int))
    o["ties"] = (o["score"] == 0.5).astype(int)
    keys = ["protocol", "system_a", "system_b"]
    return o.groupby(keys, sort=True)[["wins", "losses", "ties"]].sum().reset_index()


def win_rates(
    votes: pd.DataFrame,
    *,
    ties_mode: iv.TiesMode = "half",
    ci: str = "normal",
    level: float = 0.95,
    n_bootstrap: int = 1000,
    seed: int = 0,
    cluster_by: tuple[str, ...] | None = None,
    baseline: str | None = None,
) -> tuple[WinRate, ...]:
    """Win rate, interval and (Holm-adjusted) sign-test p-value for every protocol and pair in ``votes``.

    Args:
        votes: a validated vote table (attention-check rows already removed).
        ties_mode: ``"half"`` (a tie is half a win for each side) or ``"drop"``.
        ci: ``normal`` (paper), ``wilson``, ``exact`` (Clopper–Pearson) or ``bootstrap``.
        level: confidence level.
        n_bootstrap: bootstrap replicates (``ci="bootstrap"`` only).
        seed: seed of the bootstrap; each pair gets its own stream derived from it, so results do not depend on
            which other pairs are present.
        cluster_by: vote-table columns whose groups the bootstrap resamples together; ``None`` uses each of
            ``prompt`` and ``annotator`` that has at least two distinct values, ``()`` resamples votes i.i.d.
        baseline: system always placed second, so rates read P(system beats baseline).

    Returns:
        One `WinRate` per (protocol, pair), sorted by protocol then pair.
    """
    if ties_mode not in iv.TIES_MODES:
        raise ValueError(f"unknown ties mode '{ties_mode}'; use 'half' or 'drop'")
    if ci not in iv.CI_METHODS:
        raise ValueError(f"unknown interval method '{ci}'; use one of {', '.join(iv.CI_METHODS)}")
    counts = pair_counts(votes, baseline=baseline)
    w, l, t = (counts[c].to_numpy() for c in ("wins", "losses", "ties"))
    rate = iv.win_rate(w, l, t, ties_mode)
    p = iv.sign_test(w, l)
    p_holm = iv.holm(p)
    if ci == "bootstrap":
        cluster_by = _cluster_columns(votes, cluster_by)
        low, high = _bootstrap_bounds(votes, counts, ties_mode, level, n_bootstrap, seed, cluster_by, baseline)
    else:
        cluster_by = ()
        low, high = iv.count_interval(w, l, t, method=ci, ties_mode=ties_mode, level=level)
    return tuple(
        WinRate(
            protocol=str(row.protocol),
            system_a=str(row.system_a),
            system_b=str(row.system_b),
            wins=int(w[i]),
            losses=int(l[i]),
            ties=int(t[i]),
            win_rate=float(rate[i]),
            ci_low=float(low[i]),
            ci_high=float(high[i]),
            p_value=float(p[i]),
            p_value_holm=float(p_holm[i]),
            ties_mode=ties_mode,
            ci_method=ci,
            level=level,
            cluster_by=tuple(cluster_by),
        )
        for i, row in enumerate(counts.itertuples(index=False))
    )


def _cluster_columns(votes: pd.DataFrame, cluster_by: tuple[str, ...] | None) -> tuple[str, ...]:
    """Resolve ``cluster_by``: default to the cluster columns present; reject unknown columns."""
    if cluster_by is None:
        return tuple(c for c in CLUSTER_COLUMNS if c in votes.columns and votes[c].nunique(dropna=True) > 1)
    missing = [c for c in cluster_by if c not in votes.columns]
    if missing:
        raise ValueError(
            f"cannot cluster the bootstrap by missing column(s) {', '.join(missing)}; drop them from cluster_by"
        )
    return tuple(cluster_by)


def _bootstrap_bounds(
    votes: pd.DataFrame,
    counts: pd.DataFrame,
    ties_mode: str,
    level: float,
    n_bootstrap: int,
    seed: int,
    cluster_by: tuple[str, ...],
    baseline: str | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair (cluster) bootstrap percentile bounds, each pair seeded by (seed, CRC32 of its names)."""
    o = orient(votes, baseline)
    if ties_mode == "drop":
        keep = (o["score"] != 0.5).to_numpy()
        o, votes = o[keep], votes[keep]
    groups = o.groupby(["protocol", "system_a", "system_b"], sort=True).indices
    low = np.full(len(counts), np.nan)
    high = np.full(len(counts), np.nan)
    for i, key in enumerate(zip(counts["protocol"], counts["system_a"], counts["system_b"])):
        rows = groups.get(key)
        if rows is None:
            continue
        clusters = [votes[c].astype("string").fillna("<missing>").to_numpy()[rows] for c in cluster_by]
        rng = np.random.default_rng([seed, zlib.crc32("\x1f".join(map(str, key)).encode())])
        low[i], high[i], _ = iv.cluster_bootstrap_interval(
            o["score"].to_numpy()[rows], clusters, n_bootstrap=n_bootstrap, rng=rng, level=level
        )
    return low, high
