"""Win-rate intervals and tests against scipy / statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportion_confint

from eval_protocols.human import intervals as iv

CASES = [(7, 43, 0), (550, 450, 0), (0, 20, 0), (20, 0, 0), (3, 5, 2), (412, 301, 287)]


@pytest.mark.parametrize(("w", "l", "t"), CASES)
@pytest.mark.parametrize(("ours", "sm"), [("normal", "normal"), ("wilson", "wilson"), ("exact", "beta")])
def test_intervals_match_statsmodels_without_ties(w: int, l: int, t: int, ours: str, sm: str) -> None:
    k, n = w, w + l  # ties dropped: a plain binomial proportion
    low, high = iv.count_interval(w, l, t, method=ours, ties_mode="drop")
    ref = proportion_confint(k, n, alpha=0.05, method=sm)
    np.testing.assert_allclose([low, high], ref, atol=1e-10)


@pytest.mark.parametrize(("w", "l", "t"), CASES)
@pytest.mark.parametrize("method", ["exact", "wilson"])
def test_intervals_match_scipy_binomtest(w: int, l: int, t: int, method: str) -> None:
    low, high = iv.count_interval(w, l, t, method=method, ties_mode="drop")
    ci = stats.binomtest(w, w + l).proportion_ci(confidence_level=0.95, method=method)
    np.testing.assert_allclose([low, high], [ci.low, ci.high], atol=1e-9)


def test_scipy_documented_example() -> None:
    low, high = iv.exact_interval(7, 50)
    np.testing.assert_allclose([low, high], [0.05819170033997342, 0.26739600249700846], rtol=1e-9)


def test_ties_use_binomial_equivalent_counts() -> None:
    w, l, t = 412, 301, 287
    k, n = iv.effective_successes(w, l, t)
    scores = np.repeat([1.0, 0.0, 0.5], [w, l, t])
    assert k / n == pytest.approx(scores.mean())
    assert (k / n) * (1 - k / n) / n == pytest.approx(scores.var() / scores.size)  # same variance as the scores
    for ours, sm in [("wilson", "wilson"), ("exact", "beta")]:
        low, high = iv.count_interval(w, l, t, method=ours)
        np.testing.assert_allclose([low, high], proportion_confint(k, n, method=sm), atol=1e-10)
    np.testing.assert_allclose(iv.effective_successes(30, 20, 0), (30, 50))


def test_normal_with_ties_uses_score_variance() -> None:
    w, l, t = 412, 301, 287
    scores = np.repeat([1.0, 0.0, 0.5], [w, l, t])
    se = scores.std(ddof=0) / np.sqrt(scores.size)
    low, high = iv.normal_interval(w, l, t)
    np.testing.assert_allclose([low, high], [scores.mean() - 1.959963985 * se, scores.mean() + 1.959963985 * se])
    wald_low, _ = proportion_confint(w + t / 2, w + l + t, method="normal")
    assert low > wald_low  # ties shrink the variance by T/(4n)


# unCLIP Table 1 and §5.1 (normal approximation, n = 1000). 45.3% ± 3.0% is left out: without ties the
# interval is ±3.1%; it needs about two dozen ties among the 1,000 votes (ties shrink Var(s) by T/4n).
@pytest.mark.parametrize(
    ("rate", "half_width"),
    [(0.705, 0.028), (0.489, 0.031), (0.471, 0.031), (0.411, 0.030), (0.626, 0.030), (0.570, 0.031), (0.531, 0.031)],
)
def test_unclip_table1_half_widths(rate: float, half_width: float) -> None:
    wins = round(rate * 1000)
    low, high = iv.normal_interval(wins, 1000 - wins, 0)
    assert round(float(high - low) / 2, 3) == half_width
    assert float(low + high) / 2 == pytest.approx(rate)


def test_unclip_453_needs_ties() -> None:
    low, high = iv.normal_interval(453, 547, 0)
    assert round(float(high - low) / 2, 3) == 0.031
    low, high = iv.normal_interval(441, 535, 24)  # same p̂ = (441 + 12)/1000 = 45.3% with 24 ties
    assert float(low + high) / 2 == pytest.approx(0.453)
    assert round(float(high - low) / 2, 3) == 0.030


def test_vectorised_shapes() -> None:
    w = np.array([10, 20, 30])
    low, high = iv.count_interval(w, 40 - w, np.zeros(3), method="wilson")
    assert low.shape == high.shape == (3,)
    assert np.all(low < high)


@pytest.mark.parametrize(("w", "l"), [(550, 450), (7, 43), (10, 10), (0, 5), (13, 72)])
def test_sign_test_matches_binomtest(w: int, l: int) -> None:
    assert iv.sign_test(w, l) == pytest.approx(stats.binomtest(w, w + l, 0.5).pvalue, rel=1e-9)
    assert iv.sign_test(0, 0) == 1.0


def test_holm_matches_statsmodels() -> None:
    p = np.random.default_rng(0).uniform(0, 0.2, size=12)
    np.testing.assert_allclose(iv.holm(p), multipletests(p, method="holm")[1])
    out = iv.holm([0.01, np.nan, 0.04])
    assert np.isnan(out[1]) and out[0] == pytest.approx(0.02) and out[2] == pytest.approx(0.04)


def test_iid_bootstrap_close_to_normal_and_seeded() -> None:
    scores = np.repeat([1.0, 0.0, 0.5], [550, 350, 100])
    a = iv.cluster_bootstrap_interval(scores, n_bootstrap=4000, rng=np.random.default_rng(1))
    b = iv.cluster_bootstrap_interval(scores, n_bootstrap=4000, rng=np.random.default_rng(1))
    assert a[:2] == b[:2]
    low, high = iv.normal_interval(550, 350, 100)
    np.testing.assert_allclose(a[:2], [low, high], atol=0.004)


def test_cluster_bootstrap_widens_for_correlated_clusters() -> None:
    rng = np.random.default_rng(2)
    cluster = np.repeat(np.arange(20), 50)
    p = np.clip(0.6 + rng.normal(0, 0.2, 20), 0, 1)[cluster]
    scores = (rng.random(cluster.size) < p).astype(float)
    iid = iv.cluster_bootstrap_interval(scores, n_bootstrap=2000, rng=np.random.default_rng(0))
    clu = iv.cluster_bootstrap_interval(scores, [cluster], n_bootstrap=2000, rng=np.random.default_rng(0))
    two = iv.cluster_bootstrap_interval(
        scores, [cluster, np.arange(cluster.size) % 7], n_bootstrap=2000, rng=np.random.default_rng(0)
    )
    assert clu[1] - clu[0] > 2.0 * (iid[1] - iid[0])
    assert two[1] - two[0] >= 0.9 * (clu[1] - clu[0])
    single = iv.cluster_bootstrap_interval(
        scores, [np.zeros(cluster.size)], n_bootstrap=2000, rng=np.random.default_rng(0)
    )
    assert single[:2] == iid[:2]  # one cluster cannot be resampled: i.i.d. fallback
