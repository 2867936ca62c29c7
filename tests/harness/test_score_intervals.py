"""`harness.score.run.with_interval`: the interval attached to feature-space metrics (FD) in a run."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from eval_protocols.bootstrap import resample_indices
from eval_protocols.metrics.bootstrap import bootstrap_ci
from eval_protocols.metrics.registry import MetricInputs, get_metric
from harness.score.run import _image_replicates, with_interval


def test_fd_gets_the_basic_bootstrap_interval_reflected_about_the_estimate() -> None:
    rng = np.random.default_rng(0)
    reference, samples = rng.normal(size=(200, 8)), rng.normal(size=(60, 8))
    spec = get_metric("fd")
    inputs = MetricInputs(reference=reference, samples=samples)
    (plain,) = spec(inputs)
    (result,) = with_interval(spec, inputs, [plain], n_resamples=100, seed=3)

    def statistic(idx: np.ndarray) -> float:
        return spec(MetricInputs(reference=reference, samples=samples[idx]))[0].value

    q_low, q_high = bootstrap_ci(statistic, len(samples), n_resamples=100, seed=3)
    # Resampling with replacement duplicates images and inflates FD: the percentile interval sits above θ̂ ...
    assert q_low > plain.value
    # ... the basic interval [2θ̂ − q_high, 2θ̂ − q_low] carries that bias estimate over and lies below it.
    # (the interval comes from FD's vectorised replicate rule; the metric recomputed per resample agrees to rounding)
    assert result.ci_low is not None and result.ci_high is not None
    assert np.allclose([result.ci_low, result.ci_high], [2 * plain.value - q_high, 2 * plain.value - q_low],
                       rtol=1e-9, atol=1e-12)
    assert result.value == plain.value and result.details["ci_method"] == "basic bootstrap"


@pytest.mark.parametrize("name", ["fd", "kid", "fd-stats"])
def test_the_vectorised_replicates_equal_the_metric_recomputed_on_each_resample(name: str) -> None:
    rng = np.random.default_rng(1)
    reference, samples = rng.normal(size=(120, 6)), rng.normal(0.3, 1.1, size=(50, 6))
    spec = get_metric(name.removesuffix("-stats"))
    if name == "fd-stats":
        from eval_protocols.metrics.frechet import FeatureStats

        stats = FeatureStats(reference.mean(axis=0), np.cov(reference, rowvar=False), len(reference))
        inputs = MetricInputs(reference_stats=stats, samples=samples)
    else:
        inputs = MetricInputs(reference=reference, samples=samples)
    fast = _image_replicates(spec, inputs, spec.name, 40, seed=7)
    idx = resample_indices(len(samples), 40, np.random.default_rng(7))
    slow = [spec(dataclasses.replace(inputs, samples=samples[rows]))[0].value for rows in idx]
    assert fast.shape == (40,) and np.allclose(fast, slow, rtol=1e-9, atol=1e-12)
    assert np.ptp(fast) > 0  # the resamples differ
