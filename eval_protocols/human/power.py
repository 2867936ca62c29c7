"""Planning a pairwise study: decisive votes needed to detect a win rate, and the precision n votes buy.

One pair, H0: p = ½ (a coin flip), two-sided level α, target power 1 − β against the true win rate p1.

- Normal approximation: n = [z_{1−α/2}·sqrt(p0 q0) + z_{1−β}·sqrt(p1 q1)]² / (p1 − p0)², rounded up
  (55% at 80% power, α = 0.05 → 783).
- Exact binomial: power(n) = P(X ≤ c_n) + P(X ≥ n − c_n), X ~ Bin(n, p1), c_n the largest k with
  2·P(X ≤ k | ½) ≤ α (the sign test's rejection region). Power is saw-toothed in n, so both the first n that
  reaches the target and the n from which it never drops below it (within the search range) are reported.
- Half-width of the normal interval at n votes: z·sqrt(p(1 − p)/n) (n = 1000, p = ½ → 3.10 pp).
- Ties: decisive votes are divided by (1 − tie rate) to give the total votes to collect.

Votes per cell for a target precision (`plan_cell`), the way a study's report computes its intervals: ties count as
half a win (GLIDE/unCLIP), so the per-vote score s ∈ {1, ½, 0} has variance at most ¼, reached at p = ½ without ties.
The normal interval's half-width z·sqrt(Var(s)/n) is therefore at most z·½/√n, and

    n = ⌈(z·½ / h)²⌉                  votes a cell must keep (h = 0.05 → 385, h = 0.10 → 97, h = 0.031 → 1000)
    n_collect = ⌈n / (1 − e)⌉         votes to collect when a share e of them is expected to be dropped
                                       (annotators excluded for failing attention checks or voting implausibly fast)
    v = ⌈n_collect / m⌉               votes per item when a cell has m items (every item gets exactly v)

so every cell keeps at least n votes when at most a share e is dropped, and its half-width is at most h whatever
the true win rate and tie rate (ties only narrow it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class StudyPlan:
    """Votes needed for a target win rate and power, and the precision of a given n."""

    win_rate: float
    power: float
    alpha: float
    tie_rate: float
    n_normal: int
    """Decisive votes by the normal approximation."""
    n_exact: int
    """Smallest n whose exact sign-test power reaches ``power``."""
    n_exact_stable: int
    """Smallest n from which the exact power stays ≥ ``power`` (saw-tooth)."""
    total_votes_normal: int
    """n_normal / (1 − tie_rate), rounded up: votes to collect when ties carry no information."""
    n: int | None
    """The n asked about, if any."""
    half_width: float | None
    """Normal-interval half-width at ``n`` (at p = win_rate), as a proportion."""
    power_at_n_normal: float | None
    """Normal-approximation power at ``n``."""
    power_at_n_exact: float | None
    """Exact sign-test power at ``n``."""


def _check(win_rate: float, power: float, alpha: float) -> None:
    if not 0.0 < win_rate < 1.0 or win_rate == 0.5:
        raise ValueError(f"win rate {win_rate} must be in (0, 1) and differ from 0.5; e.g. --win-rate 0.55")
    if not 0.0 < power < 1.0 or not 0.0 < alpha < 1.0:
        raise ValueError(f"power {power} and alpha {alpha} must be in (0, 1); e.g. --power 0.8 --alpha 0.05")


def votes_needed_normal(win_rate: float, power: float = 0.8, alpha: float = 0.05, p0: float = 0.5) -> int:
    """Decisive votes for a two-sided test of p0 to reach ``power`` at ``win_rate`` (normal approximation)."""
    _check(win_rate, power, alpha)
    z_a = stats.norm.ppf(1.0 - alpha / 2.0)
    z_b = stats.norm.ppf(power)
    n: float = (z_a * math.sqrt(p0 * (1 - p0)) + z_b * math.sqrt(win_rate * (1 - win_rate))) ** 2 / (win_rate - p0) ** 2
    return math.ceil(n - 1e-9)


def power_normal(n: int, win_rate: float, alpha: float = 0.05, p0: float = 0.5) -> float:
    """Normal-approximation power of the two-sided test of p0 with n decisive votes (both tails)."""
    z_a = stats.norm.ppf(1.0 - alpha / 2.0)
    se0, se1 = math.sqrt(p0 * (1 - p0) / n), math.sqrt(win_rate * (1 - win_rate) / n)
    upper = stats.norm.sf((p0 + z_a * se0 - win_rate) / se1)
    lower = stats.norm.cdf((p0 - z_a * se0 - win_rate) / se1)
    return float(upper + lower)


def power_exact(n: np.ndarray | int, win_rate: float, alpha: float = 0.05) -> np.ndarray:
    """Exact power of the two-sided sign test (H0: ½) with n decisive votes; vectorised over n.

    The critical value c_n (largest k with 2·P(X ≤ k | ½) ≤ α, −1 if none) comes from the binomial quantile:
    q = F⁻¹(α/2) is the smallest k with F(k) ≥ α/2, so c_n = q when F(q) = α/2 exactly, else q − 1.
    """
    ns = np.atleast_1d(np.asarray(n, dtype=np.int64))
    q = stats.binom.ppf(alpha / 2.0, ns, 0.5)
    c = np.where(2.0 * stats.binom.cdf(q, ns, 0.5) <= alpha, q, q - 1.0)
    power = stats.binom.cdf(c, ns, win_rate) + stats.binom.sf(ns - c - 1.0, ns, win_rate)
    return np.where(c >= 0, power, 0.0)


def votes_needed_exact(win_rate: float, power: float = 0.8, alpha: float = 0.05) -> tuple[int, int]:
    """(first n reaching ``power``, n from which power stays ≥ ``power``) for the exact sign test.

    Searches n up to 3× the normal-approximation answer (plus 50).
    """
    _check(win_rate, power, alpha)
    n_max = 3 * votes_needed_normal(win_rate, power, alpha) + 50
    ns = np.arange(1, n_max + 1)
    p = power_exact(ns, win_rate, alpha)
    reached = np.flatnonzero(p >= power)
    if reached.size == 0:
        raise ValueError(f"exact power {power} not reached below n = {n_max}; lower the power or raise the win rate")
    below = np.flatnonzero(p < power)
    return int(ns[reached[0]]), int(ns[below[-1] + 1]) if below.size else 1


def half_width(n: int, p: float = 0.5, level: float = 0.95) -> float:
    """Normal-interval half-width z·sqrt(p(1 − p)/n) as a proportion (n = 1000, p = ½ → 0.0310)."""
    if n < 1:
        raise ValueError(f"n = {n} votes; use at least 1")
    return float(stats.norm.ppf(0.5 + level / 2.0) * math.sqrt(p * (1.0 - p) / n))


def votes_for_half_width(half_width: float, level: float = 0.95) -> int:
    """Votes n = ⌈(z·½ / h)²⌉ after which the normal interval of a win rate is at most ``half_width`` wide on each
    side, whatever the win rate (worst case p = ½, no ties). h = 0.05 → 385, h = 0.10 → 97 at level 0.95.

    Raises:
        ValueError: ``half_width`` outside (0, 0.5) or ``level`` outside (0, 1).
    """
    if not 0.0 < half_width < 0.5:
        raise ValueError(f"half-width {half_width} must be in (0, 0.5); e.g. 0.05 for ±5 percentage points")
    return math.ceil((_z(level) * 0.5 / half_width) ** 2 - 1e-9)


def inflate_for_exclusion(n: int, exclusion_share: float) -> int:
    """Votes to collect, ⌈n / (1 − e)⌉, so that n remain when a share ``exclusion_share`` = e of them is dropped.

    Raises:
        ValueError: ``n < 1`` or e outside [0, 1).
    """
    if n < 1:
        raise ValueError(f"n = {n} votes; use at least 1")
    _check_share(exclusion_share)
    return math.ceil(n / (1.0 - exclusion_share) - 1e-9)


def _z(level: float) -> float:
    """z_{(1 + level)/2}, e.g. 1.959964 for 0.95."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level {level} must be in (0, 1); e.g. 0.95")
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _check_share(exclusion_share: float) -> None:
    if not 0.0 <= exclusion_share < 1.0:
        raise ValueError(f"exclusion share {exclusion_share} must be in [0, 1); e.g. 0.2 for one vote in five dropped")


@dataclass(frozen=True)
class CellPlan:
    """Votes for one cell (one pair of systems in one protocol) of a study: target, quota and what it buys.

    A cell has ``items`` items; each collects ``votes_per_item`` votes, so the cell collects
    ``votes_per_cell = items · votes_per_item``; after dropping a share ``exclusion_share`` of them
    ``votes_per_cell · (1 − exclusion_share)`` are expected to remain, for a half-width of at most
    ``expected_half_width`` (at p = ½, no ties).
    """

    half_width: float | None
    """The target: 95% (``level``) normal-interval half-width, as a proportion; ``None`` when the votes per item
    were given instead of a target."""
    level: float
    exclusion_share: float
    """Expected share e ∈ [0, 1) of a cell's votes dropped by annotator exclusion."""
    n_planned: int | None
    """Votes the cell must keep for the target, ⌈(z·½ / h)²⌉ (``None`` without a target)."""
    n_collect: int | None
    """Votes to collect for the target, ⌈n_planned / (1 − e)⌉ (``None`` without a target)."""
    items: int
    """Items of the cell (distinct image or grid pairs)."""
    votes_per_item: int
    votes_per_cell: int
    """The cell's quota, ``items · votes_per_item``."""
    expected_half_width: float
    """z·½ / sqrt(votes_per_cell · (1 − e)): the half-width the quota buys at p = ½ after the expected exclusions."""

    @property
    def meets_target(self) -> bool:
        """Whether the quota reaches the target (always, for a plan made from a target)."""
        return self.half_width is None or self.expected_half_width <= self.half_width + 1e-12


def plan_cell(
    items: int,
    *,
    half_width: float | None = None,
    votes_per_item: int | None = None,
    exclusion_share: float = 0.0,
    level: float = 0.95,
) -> CellPlan:
    """Votes per item for a cell of ``items`` items: from the target ``half_width`` (``v = ⌈n_collect / m⌉``, see the
    module docstring), or the given ``votes_per_item``, which wins when both are given (the plan then still records
    the target's n and whether the given votes reach it).

    Raises:
        ValueError: neither or invalid values given, or ``items < 1``.
    """
    if items < 1:
        raise ValueError(f"a cell of {items} items gets no votes; give it at least one item")
    if votes_per_item is not None and (isinstance(votes_per_item, bool) or votes_per_item < 1):
        raise ValueError(f"votes_per_item must be an integer >= 1, got {votes_per_item!r}")
    _check_share(exclusion_share)
    z = _z(level)
    n_planned = None if half_width is None else votes_for_half_width(half_width, level)
    n_collect = None if n_planned is None else inflate_for_exclusion(n_planned, exclusion_share)
    if votes_per_item is None:
        if n_collect is None:
            raise ValueError("plan a cell from a target half_width or from votes_per_item; give one of them")
        votes_per_item = math.ceil(n_collect / items)
    votes_per_cell = items * votes_per_item
    return CellPlan(
        half_width=half_width,
        level=level,
        exclusion_share=exclusion_share,
        n_planned=n_planned,
        n_collect=n_collect,
        items=items,
        votes_per_item=votes_per_item,
        votes_per_cell=votes_per_cell,
        expected_half_width=z * 0.5 / math.sqrt(votes_per_cell * (1.0 - exclusion_share)),
    )


def plan_study(
    win_rate: float, power: float = 0.8, alpha: float = 0.05, *, n: int | None = None, tie_rate: float = 0.0
) -> StudyPlan:
    """All planning numbers for one pair: votes needed (normal and exact) and what ``n`` votes buy."""
    _check(win_rate, power, alpha)
    if not 0.0 <= tie_rate < 1.0:
        raise ValueError(f"tie rate {tie_rate} must be in [0, 1); e.g. --tie-rate 0.25")
    n_normal = votes_needed_normal(win_rate, power, alpha)
    n_exact, n_stable = votes_needed_exact(win_rate, power, alpha)
    return StudyPlan(
        win_rate=win_rate,
        power=power,
        alpha=alpha,
        tie_rate=tie_rate,
        n_normal=n_normal,
        n_exact=n_exact,
        n_exact_stable=n_stable,
        total_votes_normal=math.ceil(n_normal / (1.0 - tie_rate) - 1e-9),
        n=n,
        half_width=None if n is None else half_width(n, win_rate, 1.0 - alpha),
        power_at_n_normal=None if n is None else power_normal(n, win_rate, alpha),
        power_at_n_exact=None if n is None else float(power_exact(n, win_rate, alpha)[0]),
    )
