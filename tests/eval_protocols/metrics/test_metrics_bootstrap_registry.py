"""Bootstrap intervals, the metric registry and compute_metrics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from eval_protocols.metrics import compute_metrics, get_metric, list_metrics, register_metric
from eval_protocols.metrics.base import MetricResult
from eval_protocols.metrics.bootstrap import (
    bootstrap_ci,
    bootstrap_mean_ci,
    cluster_bootstrap_mean_ci,
    with_bootstrap,
)
from eval_protocols.metrics.registry import MetricInputs


def test_vectorised_mean_bootstrap_equals_the_generic_one(rng: np.random.Generator) -> None:
    values = rng.normal(size=50)
    fast = bootstrap_mean_ci(values, n_resamples=300, seed=5)
    slow = bootstrap_ci(lambda idx: float(values[idx].mean()), 50, n_resamples=300, seed=5)
    assert fast == pytest.approx(slow, rel=1e-12)


def test_percentile_interval_is_close_to_scipy(rng: np.random.Generator) -> None:
    values = rng.exponential(size=400)
    low, high = bootstrap_mean_ci(values, n_resamples=4000, seed=0)
    reference = stats.bootstrap((values,), np.mean, n_resamples=4000, method="percentile", random_state=0)
    assert low == pytest.approx(reference.confidence_interval.low, rel=0.02)
    assert high == pytest.approx(reference.confidence_interval.high, rel=0.02)


def test_cluster_bootstrap_resamples_whole_prompts(rng: np.random.Generator) -> None:
    per_prompt = np.repeat(rng.normal(size=20), 5)  # samples of a prompt are identical: prompts are the units
    groups = np.repeat(np.arange(20), 5)
    cluster = cluster_bootstrap_mean_ci(per_prompt, groups, n_resamples=2000, seed=0)
    naive = bootstrap_mean_ci(per_prompt, n_resamples=2000, seed=0)
    prompt_level = bootstrap_mean_ci(per_prompt[::5], n_resamples=2000, seed=1)
    assert cluster[1] - cluster[0] == pytest.approx(prompt_level[1] - prompt_level[0], rel=0.15)
    assert naive[1] - naive[0] < 0.6 * (cluster[1] - cluster[0])  # ignoring clustering understates the width


def test_with_bootstrap_picks_the_units() -> None:
    sample_result = MetricResult("s", 0.5, 4, True, details={"per_sample": [0.0, 1.0, 0.0, 1.0]})
    boot = with_bootstrap(sample_result, n_resamples=200)
    assert boot.ci_low is not None and boot.ci_low <= 0.5 <= boot.ci_high  # type: ignore[operator]
    assert boot.details["ci_resampled"] == "images"
    assert with_bootstrap(sample_result, groups=[0, 0, 1, 1]).details["ci_resampled"] == "prompts"
    caption_result = MetricResult("c", 1.5, 2, True, details={"per_caption": {"a": 1.0, "b": 2.0}})
    assert with_bootstrap(caption_result).details["ci_resampled"] == "prompts"
    plain = MetricResult("fd", 3.0, 10, False)
    assert with_bootstrap(plain) is plain


def test_bootstrap_rejects_too_few_units() -> None:
    with pytest.raises(ValueError, match="at least 2 units"):
        bootstrap_mean_ci([1.0])


def test_registry_names_and_did_you_mean() -> None:
    assert {"fd", "kid", "cmmd", "prdc", "clip_score", "r_precision", "diversity", "vendi"} <= set(list_metrics())
    assert get_metric("fd").higher_is_better is False and get_metric("vendi").higher_is_better is True
    with pytest.raises(ValueError, match="did you mean 'fd'"):
        get_metric("fid")
    with pytest.raises(ValueError, match="valid names: .*cmmd"):
        get_metric("zzzzzz")


def test_registration_is_not_silently_replaced() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric("fd", higher_is_better=False, requires=("samples",))(lambda inputs: [])
    with pytest.raises(ValueError, match="unknown inputs"):
        register_metric("new_one", higher_is_better=True, requires=("pixels",))


def test_missing_inputs_are_named(rng: np.random.Generator) -> None:
    with pytest.raises(ValueError, match="'kid' needs reference"):
        get_metric("kid")(MetricInputs(samples=rng.normal(size=(5, 2))))
    with pytest.raises(ValueError, match="reference_stats"):
        compute_metrics(["fd"], samples=rng.normal(size=(5, 2)))


def test_compute_metrics_order_options_and_intervals(rng: np.random.Generator) -> None:
    ref, samples = rng.normal(size=(80, 6)), rng.normal(size=(60, 6))
    groups = np.repeat(np.arange(20), 3)
    results = compute_metrics(
        ["kid", "prdc", "clip_score", "vendi"],
        ref,
        samples,
        sample_text=rng.normal(size=(60, 6)),
        groups=groups,
        options={"kid": {"subsets": 3, "subset_size": 30, "seed": 2}},
        bootstrap=100,
    )
    assert [r.name for r in results] == ["kid", "precision", "recall", "density", "coverage", "clip_score", "vendi"]
    assert results[0].details["subsets"] == 3 and results[0].ci_low is None
    assert results[5].ci_low is not None and results[5].details["ci_resampled"] == "prompts"
    assert results[6].ci_low is not None and results[6].n == 20
    with pytest.raises(ValueError, match="did you mean"):
        compute_metrics(["kid", "vendy"], ref, samples)


def test_result_json_is_flat() -> None:
    result = MetricResult("kid", 0.1, 5, False, 0.0, 0.2, details={"std": 0.01, "per_sample": [1, 2], "n_reference": 3})
    assert result.to_json(skip=("n_reference",)) == {"kid": 0.1, "kid_ci_low": 0.0, "kid_ci_high": 0.2, "kid_std": 0.01}
