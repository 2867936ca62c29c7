"""`harness.score.run.with_interval`: the interval attached to feature-space metrics (FD) in a run."""

from __future__ import annotations

import numpy as np

from eval_protocols.metrics.bootstrap import bootstrap_ci
from eval_protocols.metrics.registry import MetricInputs, get_metric
from harness.score.run import with_interval


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
    assert (result.ci_low, result.ci_high) == (2 * plain.value - q_high, 2 * plain.value - q_low)
    assert result.value == plain.value and result.details["ci_method"] == "basic bootstrap"
