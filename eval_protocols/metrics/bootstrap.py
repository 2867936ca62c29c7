"""Seeded percentile-bootstrap confidence intervals for any metric, resampling images or prompts.

For B resamples of the n units (images, or prompts with all their images) drawn with replacement, the statistic is
recomputed on each resample and the interval is its ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` percentiles
(Efron's percentile method). Cheap when the statistic is a mean of per-unit values (CLIP score, R-precision,
per-caption diversity: `bootstrap_mean_ci`, vectorised); `bootstrap_ci` takes any statistic of a resampled index
array, e.g. ``lambda idx: fd_from_features(ref, samples[idx]).value`` (costly at D = 2048: one O(D^3) FD per resample).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from eval_protocols.metrics.base import MetricResult, group_indices


def _check(n_units: int, n_resamples: int, confidence: float) -> None:
    if n_units < 2:
        raise ValueError(f"a bootstrap needs at least 2 units to resample, got {n_units}")
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples} and {confidence}")


def _percentiles(values: np.ndarray, confidence: float) -> tuple[float, float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(values, [alpha, 1.0 - alpha])
    return float(low), float(high)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic(indices)`` over resampled unit indices.

    Args:
        statistic: maps an ``int64 (n_units,)`` array of unit indices (drawn with replacement) to a number.
        n_units: number of units.
        n_resamples: bootstrap replicates B.
        confidence: interval coverage, e.g. 0.95.
        seed: seed of the resampling.

    Returns:
        ``(low, high)``.
    """
    _check(n_units, n_resamples, confidence)
    rng = np.random.default_rng(seed)
    values = np.array([statistic(rng.integers(0, n_units, n_units)) for _ in range(n_resamples)], dtype=np.float64)
    return _percentiles(values, confidence)


def bootstrap_mean_ci(
    values: Any, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-unit ``values`` ``(n,)`` (vectorised over resamples)."""
    array = np.asarray(values, dtype=np.float64)
    _check(len(array), n_resamples, confidence)
    rng = np.random.default_rng(seed)
    means = array[rng.integers(0, len(array), (n_resamples, len(array)))].mean(axis=1)
    return _percentiles(means, confidence)


def cluster_bootstrap_mean_ci(
    values: Any, groups: Any, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Interval of the mean of per-sample ``values`` when whole prompts (``groups``) are resampled with their samples.

    Each replicate draws prompts with replacement and averages all samples of the drawn prompts (a prompt drawn twice
    counts twice): ``sum_p c_p S_p / sum_p c_p n_p`` with ``c_p`` the draw count, ``S_p`` and ``n_p`` its sum and size.
    """
    array = np.asarray(values, dtype=np.float64)
    by_prompt = group_indices(groups, len(array), what="prompt")
    sums = np.array([array[rows].sum() for rows in by_prompt.values()])
    sizes = np.array([len(rows) for rows in by_prompt.values()], dtype=np.float64)
    _check(len(sums), n_resamples, confidence)
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(len(sums), np.full(len(sums), 1.0 / len(sums)), size=n_resamples)
    return _percentiles((counts @ sums) / (counts @ sizes), confidence)


def with_bootstrap(
    result: MetricResult,
    *,
    groups: Any = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> MetricResult:
    """``result`` with ``ci_low``/``ci_high`` from its per-unit values, when it has them (else unchanged).

    ``details["per_caption"]`` -> prompts resampled; ``details["per_sample"]`` -> images resampled, or whole prompts
    when ``groups`` (``(N,)`` prompt labels) is given.
    """
    if "per_caption" in result.details:
        values = np.fromiter(result.details["per_caption"].values(), dtype=np.float64)
        low, high = bootstrap_mean_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
        resampled = "prompts"
    elif "per_sample" in result.details:
        values = np.asarray(result.details["per_sample"], dtype=np.float64)
        if groups is not None:
            low, high = cluster_bootstrap_mean_ci(
                values, groups, n_resamples=n_resamples, confidence=confidence, seed=seed
            )
            resampled = "prompts"
        else:
            low, high = bootstrap_mean_ci(values, n_resamples=n_resamples, confidence=confidence, seed=seed)
            resampled = "images"
    else:
        return result
    details = {**result.details, "ci_resampled": resampled, "ci_confidence": confidence, "ci_resamples": n_resamples}
    return dataclasses.replace(result, ci_low=low, ci_high=high, details=details)
