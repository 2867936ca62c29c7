"""Study planning against closed forms, statsmodels and a direct binomial power computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from eval_protocols.human.power import (
    half_width,
    inflate_for_exclusion,
    plan_cell,
    plan_study,
    power_exact,
    votes_for_half_width,
    votes_needed_exact,
    votes_needed_normal,
)


@pytest.mark.parametrize(("p1", "n"), [(0.52, 4904), (0.55, 783), (0.60, 194), (0.65, 85), (0.70, 47)])
def test_reference_table(p1: float, n: int) -> None:
    assert votes_needed_normal(p1) == n


def test_90_percent_power_and_arcsine_cross_check() -> None:
    assert votes_needed_normal(0.55, power=0.9) == 1047
    h = proportion_effectsize(0.55, 0.5)
    n_arcsine = NormalIndPower().solve_power(effect_size=h, alpha=0.05, power=0.8, ratio=0)
    assert abs(votes_needed_normal(0.55) - n_arcsine) < 2


def _power_by_definition(n: int, p1: float, alpha: float = 0.05) -> float:
    """Probability under p1 that scipy's two-sided binomtest rejects at alpha."""
    k = np.arange(n + 1)
    reject = np.array([stats.binomtest(int(x), n, 0.5).pvalue <= alpha for x in k])
    return float(stats.binom.pmf(k[reject], n, p1).sum())


@pytest.mark.parametrize("n", [30, 101, 780, 800, 850])
def test_exact_power_matches_binomtest_rejection_region(n: int) -> None:
    assert power_exact(n, 0.55)[0] == pytest.approx(_power_by_definition(n, 0.55), abs=1e-12)


def test_exact_sawtooth_reference_values() -> None:
    np.testing.assert_allclose(power_exact([780, 800, 850], 0.55), [0.796, 0.793, 0.815], atol=5e-4)
    first, stable = votes_needed_exact(0.55)
    assert power_exact(first, 0.55)[0] >= 0.8 > power_exact(first - 1, 0.55)[0]
    assert 780 < first <= stable < 850
    assert np.all(power_exact(np.arange(stable, stable + 40), 0.55) >= 0.8)


def test_half_width_and_plan() -> None:
    assert half_width(1000) == pytest.approx(0.0310, abs=5e-5)
    plan = plan_study(0.55, 0.8, n=1000, tie_rate=0.25)
    assert plan.n_normal == 783 and plan.total_votes_normal == 1044
    assert plan.half_width == pytest.approx(1.959964 * np.sqrt(0.55 * 0.45 / 1000), rel=1e-6)
    with pytest.raises(ValueError, match="differ from 0.5"):
        plan_study(0.5)


# -- votes per cell for a target half-width (`plan_cell`) -------------------------------------------------------


@pytest.mark.parametrize(("h", "n"), [(0.05, 385), (0.10, 97), (0.031, 1000), (0.03, 1068)])
def test_votes_for_half_width_closed_form(h: float, n: int) -> None:
    assert votes_for_half_width(h) == n
    # the smallest n whose worst-case (p = 1/2) normal half-width is within the target, by brute force
    assert half_width(n) <= h < half_width(n - 1)


def test_votes_for_half_width_other_levels_and_errors() -> None:
    z99 = stats.norm.ppf(0.995)
    assert votes_for_half_width(0.05, level=0.99) == int(np.ceil((z99 * 0.5 / 0.05) ** 2))  # 664
    for bad in (0.0, 0.5, -0.1):
        with pytest.raises(ValueError, match=r"half-width .* must be in \(0, 0.5\)"):
            votes_for_half_width(bad)


def test_exclusion_inflation() -> None:
    assert inflate_for_exclusion(385, 0.0) == 385
    assert inflate_for_exclusion(385, 0.2) == 482  # 481.25 up
    assert inflate_for_exclusion(80, 0.2) == 100  # exactly 100, not 101
    assert inflate_for_exclusion(97, 0.15) == 115
    with pytest.raises(ValueError, match=r"must be in \[0, 1\)"):
        inflate_for_exclusion(10, 1.0)


@pytest.mark.parametrize(("items", "votes"), [(64, 8), (512, 1), (4, 31), (482, 1), (481, 2), (1, 482)])
def test_plan_cell_from_a_target(items: int, votes: int) -> None:
    plan = plan_cell(items, half_width=0.05 if items != 4 else 0.10, exclusion_share=0.2)
    assert plan.votes_per_item == votes and plan.votes_per_cell == items * votes
    assert plan.votes_per_cell >= plan.n_collect and (plan.votes_per_item - 1) * items < plan.n_collect
    kept = plan.votes_per_cell * 0.8  # after the expected exclusions the cell keeps at least the planned votes
    assert kept >= plan.n_planned and plan.meets_target
    assert plan.expected_half_width == pytest.approx(half_width(1) / np.sqrt(kept), rel=1e-12)


def test_plan_cell_keeps_its_promise_under_simulated_voting() -> None:
    """Votes of a cell at p = 1/2 with 10% ties (scores 1, 1/2, 0), a fifth of them dropped at random: the normal
    interval of the kept votes (the report's: sample variance of the scores) is never wider than the target."""
    plan = plan_cell(64, half_width=0.05, exclusion_share=0.2)
    rng = np.random.default_rng(0)
    scores = rng.choice([1.0, 0.5, 0.0], p=[0.45, 0.10, 0.45], size=(2000, plan.votes_per_cell))
    kept = scores[:, : int(plan.votes_per_cell * 0.8)]
    widths = stats.norm.ppf(0.975) * kept.std(axis=1) / np.sqrt(kept.shape[1])
    assert widths.max() <= 0.05


def test_plan_cell_with_explicit_votes() -> None:
    plan = plan_cell(64, half_width=0.05, votes_per_item=2, exclusion_share=0.2)  # the given votes win
    assert plan.votes_per_item == 2 and plan.n_planned == 385 and plan.n_collect == 482
    assert not plan.meets_target and plan.expected_half_width == pytest.approx(half_width(1) / np.sqrt(128 * 0.8), rel=1e-12)
    bare = plan_cell(10, votes_per_item=3)
    assert bare.half_width is None and bare.n_planned is None and bare.meets_target
    with pytest.raises(ValueError, match="give one of them"):
        plan_cell(10)
    with pytest.raises(ValueError, match="at least one item"):
        plan_cell(0, half_width=0.05)
