"""Confidence intervals and tests for one win rate, vectorised over arrays of counts.

Notation (one pair, A vs B): W wins of A, L losses, T ties, n = W + L + T votes, per-vote score
s ∈ {1, ½, 0}. With ties counted as half (GLIDE/unCLIP, the default) p̂ = (W + T/2)/n; with ties dropped
p̂ = W/(W + L) and n = W + L. Every function takes scalars or equal-shape arrays and returns float64 arrays
of that shape (0-d for scalars), so a simulation can compute thousands of intervals at once.

Methods:
- ``normal``: the paper's normal approximation (unCLIP App. B), p̂ ± z·SE with SE² = Var(s)/n, the sample
  variance of the per-vote scores (ddof 0). Without ties this is Wald's p̂(1−p̂)/n; with ties as half
  Var(s) = (W + T/4)/n − p̂², smaller than p̂(1−p̂) by T/(4n): ties carry less uncertainty than a coin flip.
- ``wilson``: Wilson's score interval on k successes of n; with ties as half on the binomial-equivalent
  (k_eff, n_eff) of `effective_successes`, which has the same p̂ and the tie-aware variance.
- ``exact``: Clopper–Pearson [B(α/2; k, n−k+1), B(1−α/2; k+1, n−k)] (Beta quantiles, fractional k allowed),
  on (k_eff, n_eff) with ties as half.
- ``bootstrap``: percentile interval of a seeded (cluster) bootstrap, see `cluster_bootstrap_interval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from eval_protocols import bootstrap

TiesMode = Literal["half", "drop"]
CIMethod = Literal["normal", "wilson", "exact", "bootstrap"]
TIES_MODES: tuple[str, ...] = ("half", "drop")
CI_METHODS: tuple[str, ...] = ("normal", "wilson", "exact", "bootstrap")


def z_quantile(level: float = 0.95) -> float:
    """Two-sided standard-normal quantile z_{1−α/2} for confidence ``level`` = 1 − α (0.95 → 1.959964)."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level {level} is outside (0, 1); use e.g. 0.95")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def successes(
    wins: ArrayLike, losses: ArrayLike, ties: ArrayLike, ties_mode: TiesMode = "half"
) -> tuple[np.ndarray, np.ndarray]:
    """Successes k and trials n under a tie convention.

    Returns:
        ``(k, n)``: ``(W + T/2, W + L + T)`` for ``"half"``, ``(W, W + L)`` for ``"drop"``; float64 arrays.
    """
    w, l, t = (np.asarray(x, dtype=np.float64) for x in (wins, losses, ties))
    if ties_mode == "half":
        return w + 0.5 * t, w + l + t
    if ties_mode == "drop":
        return w, w + l
    raise ValueError(f"unknown ties mode '{ties_mode}'; use 'half' or 'drop'")


def effective_successes(
    wins: ArrayLike, losses: ArrayLike, ties: ArrayLike, ties_mode: TiesMode = "half"
) -> tuple[np.ndarray, np.ndarray]:
    """Binomial-equivalent (k_eff, n_eff) with the same p̂ and the tie-aware variance.

    With ties as half, n votes of score variance Var(s) = (W + T/4)/n − p̂² carry as much information as
    n_eff = n·p̂(1 − p̂)/Var(s) ≥ n binomial trials; k_eff = p̂·n_eff. Without ties (or ties dropped) this is
    (k, n) itself. Wilson and Clopper–Pearson use these, so ties narrow every interval consistently
    (plain fractional counts would leave them up to 2× too wide at many ties: over-coverage).
    """
    k, n = successes(wins, losses, ties, ties_mode)
    if ties_mode == "drop":
        return k, n
    w, t = np.asarray(wins, dtype=np.float64), np.asarray(ties, dtype=np.float64)
    safe_n = np.where(n > 0, n, 1.0)
    p = k / safe_n
    var = (w + 0.25 * t) / safe_n - p * p
    binom_var = p * (1.0 - p)
    n_eff = np.where((var > 0) & (binom_var > 0), n * binom_var / np.where(var > 0, var, 1.0), n)
    return p * n_eff, n_eff


def win_rate(wins: ArrayLike, losses: ArrayLike, ties: ArrayLike, ties_mode: TiesMode = "half") -> np.ndarray:
    """p̂ = k/n under the tie convention (NaN where n = 0)."""
    k, n = successes(wins, losses, ties, ties_mode)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, k / np.where(n > 0, n, 1.0), np.nan)


def normal_interval(
    wins: ArrayLike, losses: ArrayLike, ties: ArrayLike, *, ties_mode: TiesMode = "half", level: float = 0.95
) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation interval p̂ ± z·sqrt(Var(s)/n) with the tie-aware score variance.

    Var(s) = E[s²] − p̂² with E[s²] = (W + T/4)/n for ties as half (= p̂(1−p̂) without ties, the paper's
    Wald interval: 70.5% at n = 1000 → ±2.8 pp). Ties dropped: Var(s) = p̂(1−p̂) over the decisive votes.
    Bounds are not clipped to [0, 1] (as in the paper); NaN where n = 0.
    """
    w, l, t = (np.asarray(x, dtype=np.float64) for x in (wins, losses, ties))
    p = win_rate(w, l, t, ties_mode)
    if ties_mode == "half":
        n = w + l + t
        second_moment = (w + 0.25 * t) / np.where(n > 0, n, 1.0)
    else:
        n = w + l
        second_moment = p
    var = np.maximum(second_moment - p * p, 0.0)
    half = z_quantile(level) * np.sqrt(var / np.where(n > 0, n, np.nan))
    return p - half, p + half


def wilson_interval(k: ArrayLike, n: ArrayLike, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval: centre (p̂ + z²/2n)/(1 + z²/n), half-width z·sqrt(p̂(1−p̂)/n + z²/4n²)/(1 + z²/n).

    ``k`` may be fractional (ties as half). NaN where n = 0.
    """
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = z_quantile(level)
    safe_n = np.where(n > 0, n, np.nan)
    p = k / safe_n
    denom = 1.0 + z * z / safe_n
    centre = (p + z * z / (2.0 * safe_n)) / denom
    half = z * np.sqrt(np.maximum(p * (1.0 - p), 0.0) / safe_n + z * z / (4.0 * safe_n**2)) / denom
    return centre - half, centre + half


def exact_interval(k: ArrayLike, n: ArrayLike, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Clopper–Pearson interval from Beta quantiles; 0 / 1 at k = 0 / k = n. ``k`` may be fractional."""
    k = np.asarray(k, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    alpha = 1.0 - level
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"confidence level {level} is outside (0, 1); use e.g. 0.95")
    with np.errstate(invalid="ignore"):
        low = np.where(k > 0, stats.beta.ppf(alpha / 2.0, np.maximum(k, 1e-300), n - k + 1.0), 0.0)
        high = np.where(k < n, stats.beta.ppf(1.0 - alpha / 2.0, k + 1.0, np.maximum(n - k, 1e-300)), 1.0)
    bad = n <= 0
    return np.where(bad, np.nan, low), np.where(bad, np.nan, high)


def count_interval(
    wins: ArrayLike,
    losses: ArrayLike,
    ties: ArrayLike,
    *,
    method: str = "normal",
    ties_mode: TiesMode = "half",
    level: float = 0.95,
) -> tuple[np.ndarray, np.ndarray]:
    """Interval for the win rate from counts alone, by ``method`` ∈ {normal, wilson, exact}."""
    if method == "normal":
        return normal_interval(wins, losses, ties, ties_mode=ties_mode, level=level)
    k, n = effective_successes(wins, losses, ties, ties_mode)
    if method == "wilson":
        return wilson_interval(k, n, level=level)
    if method == "exact":
        return exact_interval(k, n, level=level)
    raise ValueError(
        f"unknown interval method '{method}' for counts; use normal, wilson or exact (or bootstrap on votes)"
    )


def sign_test(wins: ArrayLike, losses: ArrayLike) -> np.ndarray:
    """Two-sided exact binomial (sign) test of W wins in W + L decisive votes against ½.

    p = min(1, 2·P(X ≤ min(W, L))), X ~ Binomial(W + L, ½) (= ``scipy.stats.binomtest(W, W+L).pvalue``);
    1 where there are no decisive votes.
    """
    w = np.asarray(wins, dtype=np.float64)
    l = np.asarray(losses, dtype=np.float64)
    n = w + l
    p = 2.0 * stats.binom.cdf(np.minimum(w, l), n, 0.5)
    return np.where(n > 0, np.minimum(p, 1.0), 1.0)


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm step-down adjusted p-values: p̃_(i) = max_{j ≤ i} min(1, (m − j + 1)·p_(j)) in ascending order.

    Same as ``statsmodels.stats.multitest.multipletests(p, method="holm")[1]``; NaNs stay NaN and are not counted.
    """
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return out
    order = valid[np.argsort(p[valid], kind="stable")]
    adjusted = np.maximum.accumulate(np.minimum(1.0, (m - np.arange(m)) * p[order]))
    out[order] = adjusted
    return out


def cluster_bootstrap_interval(
    scores: ArrayLike,
    clusters: Sequence[ArrayLike] = (),
    *,
    n_bootstrap: int = 1000,
    rng: np.random.Generator,
    level: float = 0.95,
) -> tuple[float, float, np.ndarray]:
    """Percentile bootstrap interval of the mean score, resampling whole clusters.

    With no clusters, votes are resampled i.i.d. With one cluster variable (e.g. prompt or annotator), its
    G groups are resampled with replacement (multiplicities ~ Multinomial(G, 1/G)) and each group keeps all its
    votes. With two or more (prompt and annotator), each variable is resampled independently and a vote's
    weight is the product of its groups' multiplicities (Owen's pigeonhole bootstrap). The statistic of a
    replicate is Σ_v w_v s_v / Σ_v w_v; all replicates are computed at once on unique (group, group) cells
    (`eval_protocols.bootstrap.cluster_mean_replicates`; groups coded in sorted label order). Without clusters the
    replicates are multinomial counts of the distinct scores (`eval_protocols.bootstrap.count_mean_replicates`).
    A cluster variable with a single group cannot be resampled and is ignored (no variables left: i.i.d.).

    Args:
        scores: per-vote score s ∈ [0, 1]; shape [n_votes].
        clusters: cluster labels per vote, each of shape [n_votes] (any hashable values).
        n_bootstrap: number of replicates B.
        rng: the seeded generator that draws the multiplicities.
        level: confidence level of the percentile interval.

    Returns:
        ``(low, high, replicates)`` with replicates of shape [B] (replicates with zero weight are NaN and
        ignored by the percentiles).
    """
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return float("nan"), float("nan"), np.full(n_bootstrap, np.nan)
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap = {n_bootstrap}; use at least 1 (e.g. 1000)")
    clusters = [c for c in (np.asarray(c) for c in clusters) if np.unique(c).size > 1]
    if len(clusters) == 0:
        replicates = bootstrap.count_mean_replicates(s, n_bootstrap, rng)
    else:
        codes = np.stack([np.unique(np.asarray(c), return_inverse=True)[1].ravel() for c in clusters], axis=1)
        cells, cell_of_vote = np.unique(codes, axis=0, return_inverse=True)
        cell_of_vote = cell_of_vote.ravel()
        cell_sum = np.bincount(cell_of_vote, weights=s, minlength=len(cells))
        cell_n = np.bincount(cell_of_vote, minlength=len(cells))
        replicates = bootstrap.cluster_mean_replicates(cell_sum, cell_n, cells, n_bootstrap, rng)
    low, high = bootstrap.percentile_interval(replicates, level)
    return low, high, replicates
