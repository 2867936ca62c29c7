"""The shared seeded bootstrap: resampling schemes against explicit resampled data sets, interval rules by hand."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from eval_protocols.bootstrap import (
    basic_interval,
    cluster_mean_replicates,
    cluster_multiplicities,
    count_mean_replicates,
    difference_interval,
    percentile_interval,
    quantile_interval,
    resample_indices,
    rescale_spread,
    shifted_interval,
    stratified_indices,
)


def test_resample_indices_row_by_row_equal_all_at_once() -> None:
    together = resample_indices(37, 50, np.random.default_rng(3))
    rng = np.random.default_rng(3)
    one_by_one = np.stack([resample_indices(37, 1, rng)[0] for _ in range(50)])
    assert together.shape == (50, 37) and np.array_equal(together, one_by_one)
    assert together.min() >= 0 and together.max() < 37


def test_stratified_indices_stay_within_their_stratum() -> None:
    groups = np.array(["b", "a", "b", "c", "a", "b", "c", "c", "c"])
    idx = stratified_indices(groups, len(groups), 500, np.random.default_rng(0))
    assert idx.shape == (500, 9)
    assert (groups[idx] == groups[None, :]).all()  # position j draws from row j's prompt only
    for label in "abc":  # every row of a stratum is drawn, about uniformly
        rows = np.flatnonzero(groups == label)
        counts = np.bincount(idx[:, rows].ravel(), minlength=9)[rows]
        assert counts.min() > 0.8 * counts.mean()
    assert np.array_equal(stratified_indices(None, 4, 3, np.random.default_rng(1)),
                          np.random.default_rng(1).integers(0, 4, (3, 4)))


def _explicit_cluster_mean(values: np.ndarray, codes: np.ndarray, mults: list[np.ndarray]) -> float:
    """Mean of the resampled data set built by repeating every unit by the product of its clusters' multiplicities."""
    repeats = np.prod([mult[codes[:, k]] for k, mult in enumerate(mults)], axis=0)
    resampled = np.repeat(values, repeats)
    return float(resampled.mean()) if resampled.size else float("nan")


@pytest.mark.parametrize("n_variables", [1, 2])
def test_cluster_mean_replicates_equal_the_mean_of_the_resampled_data(n_variables: int) -> None:
    rng = np.random.default_rng(5)
    values = rng.normal(size=60)
    codes = np.stack([rng.integers(0, 6, 60), rng.integers(0, 4, 60)], axis=1)[:, :n_variables]
    cells, cell_of = np.unique(codes, axis=0, return_inverse=True)
    sums = np.bincount(cell_of.ravel(), weights=values)
    sizes = np.bincount(cell_of.ravel())
    reps = cluster_mean_replicates(sums, sizes, cells, 30, np.random.default_rng(9))
    draw = np.random.default_rng(9)  # the same multiplicities, variable by variable
    mults = [cluster_multiplicities(int(codes[:, k].max()) + 1, 30, draw) for k in range(n_variables)]
    for b in range(30):
        expected = _explicit_cluster_mean(values, codes, [m[b] for m in mults])
        assert reps[b] == pytest.approx(expected, rel=1e-12, nan_ok=True)


def test_cluster_multiplicities_draw_g_clusters() -> None:
    counts = cluster_multiplicities(7, 2000, np.random.default_rng(0))
    assert counts.shape == (2000, 7) and (counts.sum(axis=1) == 7).all()
    assert counts.mean(axis=0) == pytest.approx(np.ones(7), abs=0.08)


def test_count_mean_replicates_have_the_iid_bootstrap_distribution() -> None:
    votes = np.random.default_rng(2).choice([0.0, 0.5, 1.0], size=400, p=[0.3, 0.2, 0.5])
    reps = count_mean_replicates(votes, 20000, np.random.default_rng(0))
    assert reps.mean() == pytest.approx(votes.mean(), abs=1e-3)
    assert reps.std() == pytest.approx(votes.std() / np.sqrt(len(votes)), rel=0.03)  # plug-in SE of a mean


def test_percentile_interval_matches_scipy_and_ignores_nan() -> None:
    values = np.random.default_rng(4).exponential(size=300)
    means = values[resample_indices(300, 4000, np.random.default_rng(0))].mean(axis=1)
    reference = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=0)
    low, high = percentile_interval(means, 0.95)
    assert low == pytest.approx(reference.confidence_interval.low, rel=0.02)
    assert high == pytest.approx(reference.confidence_interval.high, rel=0.02)
    assert percentile_interval(np.append(means, [np.nan, np.nan])) == (low, high)


def test_interval_rules_by_hand() -> None:
    reps = np.arange(101, dtype=np.float64)  # q_0.025 = 2.5, q_0.975 = 97.5, mean 50
    assert quantile_interval(reps, 0.1, 0.9) == pytest.approx((10.0, 90.0))
    assert percentile_interval(reps) == pytest.approx((2.5, 97.5))
    assert basic_interval(60.0, reps) == pytest.approx((22.5, 117.5))  # (2·60 − 97.5, 2·60 − 2.5)
    assert shifted_interval(10.0, reps) == pytest.approx((-37.5, 57.5))  # (2.5 − 50 + 10, 97.5 − 50 + 10)
    assert rescale_spread(reps, 2.0) == pytest.approx(2 * reps - 50)


def test_difference_interval_signs_and_bias_shift() -> None:
    base = np.arange(101, dtype=np.float64)
    same = difference_interval(5.0, base + 3, 4.0, base, higher_is_better=False, tail=0.05)
    assert (same.worse_by, same.low, same.high) == pytest.approx((1.0, 1.0, 1.0))  # no spread in the difference
    up = difference_interval(5.0, base[::-1].copy(), 4.0, base, higher_is_better=True, tail=0.05)
    assert up.worse_by == pytest.approx(-1.0)  # higher is better and the current is higher: better, w < 0
    diffs = -(base[::-1] - base)
    assert (up.low, up.high) == pytest.approx(tuple(np.quantile(diffs - diffs.mean() - 1.0, [0.05, 0.95])))
    short = difference_interval(1.0, base[:10], 0.0, base, higher_is_better=False, tail=0.1)
    assert (short.low, short.high) == pytest.approx((1.0, 1.0))  # only the first min(B, B') replicates pair up


def _run(rng: np.random.Generator, shift: float) -> tuple[float, np.ndarray]:
    """A mean over 8 prompts x 4 images and its within-prompt replicates."""
    values = rng.normal(size=32) + shift
    groups = np.repeat(np.arange(8), 4)
    idx = stratified_indices(groups, 32, 400, rng)
    return float(values.mean()), values[idx].mean(axis=1)


def test_difference_interval_controls_false_alarms_and_detects_a_shift() -> None:
    rng = np.random.default_rng(11)
    false_alarms = detected = 0
    for _ in range(300):
        base = _run(rng, 0.0)
        same = difference_interval(*_run(rng, 0.0), *base, higher_is_better=False, tail=0.025)
        worse = difference_interval(*_run(rng, 1.0), *base, higher_is_better=False, tail=0.025)
        false_alarms += same.low > 0
        detected += worse.low > 0
    assert false_alarms <= 300 * 0.025 * 2.5  # nominal 2.5%, a bootstrap of 32 values runs a little narrow
    assert detected >= 0.95 * 300  # a shift of 1 SD per image is 5.7 standard errors of the difference
