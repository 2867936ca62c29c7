"""Study planning against closed forms, statsmodels and a direct binomial power computation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from eval_protocols.human.power import half_width, plan_study, power_exact, votes_needed_exact, votes_needed_normal


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
