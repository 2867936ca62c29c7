"""Bootstrap intervals and replicates of metrics, on the seeded bootstrap of `eval_protocols.bootstrap`.

For B resamples of the n units (images, or prompts with all their images) drawn with replacement, the statistic is
recomputed on each resample. Intervals for one run:

- `bootstrap_mean_ci`, `cluster_bootstrap_mean_ci`: percentile interval of a mean of per-unit values (CLIP score,
  R-precision, per-caption diversity), vectorised; `with_bootstrap` picks the units from a `MetricResult`;
- `bootstrap_replicates` / `bootstrap_ci`: any statistic of a resampled index array, e.g.
  ``lambda idx: fd_from_features(ref, samples[idx]).value`` (costly at D = 2048: one O(D^3) FD per resample), with
  the percentile interval, or `eval_protocols.bootstrap.basic_interval` for statistics biased by repeated images.

Replicates for comparing two runs (the CI regression gate): `metric_replicates` gives a metric's point value and its
replicates on resamples drawn within prompts (`eval_protocols.bootstrap.stratified_indices`) by the metric's own
registered rule (`MetricSpec.replicates`); `eval_protocols.bootstrap.difference_interval` turns the replicates of two
runs into the interval of their difference. `gate_metrics()` (`eval_protocols.metrics.registry`) lists the metrics
that have such a rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

from eval_protocols.bootstrap import (
    check_resamples,
    cluster_mean_replicates,
    percentile_interval,
    resample_indices,
    rescale_spread,
)
from eval_protocols.metrics.base import MetricResult, group_indices
from eval_protocols.metrics.registry import MetricInputs, gate_metrics, get_metric


def _check(n_units: int, n_resamples: int, confidence: float = 0.95) -> None:
    if n_units < 2:
        raise ValueError(f"a bootstrap needs at least 2 units to resample, got {n_units}")
    check_resamples(n_resamples, confidence)


def bootstrap_replicates(
    statistic: Callable[[np.ndarray], float], n_units: int, *, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """``statistic(indices)`` on ``n_resamples`` resamples of the unit indices: ``float64 (n_resamples,)``.

    Args:
        statistic: maps an ``int64 (n_units,)`` array of unit indices (drawn with replacement) to a number.
        n_units: number of units (>= 2).
        n_resamples: bootstrap replicates B.
        seed: seed of the resampling (`eval_protocols.bootstrap.resample_indices`, one row per replicate).
    """
    _check(n_units, n_resamples)
    rng = np.random.default_rng(seed)
    return np.array([statistic(resample_indices(n_units, 1, rng)[0]) for _ in range(n_resamples)], dtype=np.float64)


def bootstrap_ci(
    statistic: Callable[[np.ndarray], float],
    n_units: int,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``statistic(indices)`` over resampled unit indices (`bootstrap_replicates`).

    Returns:
        ``(low, high)``.
    """
    _check(n_units, n_resamples, confidence)
    replicates = bootstrap_replicates(statistic, n_units, n_resamples=n_resamples, seed=seed)
    return percentile_interval(replicates, confidence)


def bootstrap_mean_ci(
    values: Any, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of per-unit ``values`` ``(n,)`` (vectorised over resamples)."""
    array = np.asarray(values, dtype=np.float64)
    _check(len(array), n_resamples, confidence)
    rng = np.random.default_rng(seed)
    means = array[resample_indices(len(array), n_resamples, rng)].mean(axis=1)
    return percentile_interval(means, confidence)


def cluster_bootstrap_mean_ci(
    values: Any, groups: Any, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Interval of the mean of per-sample ``values`` when whole prompts (``groups``) are resampled with their samples.

    Each replicate draws prompts with replacement and averages all samples of the drawn prompts (a prompt drawn twice
    counts twice): ``sum_p c_p S_p / sum_p c_p n_p`` with ``c_p`` the draw count, ``S_p`` and ``n_p`` its sum and size
    (`eval_protocols.bootstrap.cluster_mean_replicates`, prompts coded in first-seen order).
    """
    array = np.asarray(values, dtype=np.float64)
    by_prompt = group_indices(groups, len(array), what="prompt")
    sums = np.array([array[rows].sum() for rows in by_prompt.values()])
    sizes = np.array([len(rows) for rows in by_prompt.values()], dtype=np.float64)
    _check(len(sums), n_resamples, confidence)
    rng = np.random.default_rng(seed)
    replicates = cluster_mean_replicates(sums, sizes, np.arange(len(sums)), n_resamples, rng)
    return percentile_interval(replicates, confidence)


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


# -------------------------------------------------------------------------------- replicates for two-run comparisons


def metric_replicates(
    name: str, inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Point value and bootstrap replicates of the registered metric ``name`` (its `MetricSpec.replicates` rule).

    Args:
        name: a metric of `eval_protocols.metrics.registry.gate_metrics`.
        inputs: the metric's inputs on all units; ``groups`` = prompt label per sample.
        idx: ``int (B, N)`` resampled sample rows, drawn within prompts
            (`eval_protocols.bootstrap.stratified_indices` of ``inputs.groups``).
        ref_idx: ``int (B, N_ref)`` resampled reference rows (metrics against reference features: ``fd``, ``kid``),
            or None.

    Returns:
        ``(value, float64 (B,) replicates)``.

    Raises:
        ValueError: unknown name, a metric without a replicate rule, or missing inputs.
    """
    spec = get_metric(name)
    if spec.replicates is None:
        raise ValueError(f"metric '{name}' has no bootstrap replicate rule; metrics with one: {', '.join(gate_metrics())}")
    spec.check_inputs(inputs)
    return spec.replicates(inputs, np.asarray(idx), None if ref_idx is None else np.asarray(ref_idx))


def mean_replicates(per_sample: Any, groups: Any, idx: np.ndarray) -> tuple[float, np.ndarray]:
    """Point value and replicates of a mean of per-sample values, resampled within prompts.

    Replicate b is ``mean(per_sample[idx[b]])``; its deviation from the replicates' mean is widened by
    ``sqrt(n / (n − 1))`` with n the smallest number of samples of a prompt (n > 1): the small-sample correction of a
    bootstrapped mean (within-prompt resampling of n values has variance ``(n − 1)/n`` of the plug-in one).

    Args:
        per_sample: ``(N,)`` values (CLIP score per sample, a proxy's utility per sample).
        groups: ``(N,)`` prompt label per sample, or None for one prompt.
        idx: ``int (B, N)`` resampled rows (`eval_protocols.bootstrap.stratified_indices`).

    Returns:
        ``(mean, float64 (B,))``.
    """
    values = np.asarray(per_sample, dtype=np.float64)
    labels = np.zeros(len(values), dtype=np.int64) if groups is None else np.asarray(groups)
    n_small = int(min(np.unique(labels, return_counts=True)[1]))
    factor = float(np.sqrt(n_small / (n_small - 1))) if n_small > 1 else 1.0
    return float(values.mean()), rescale_spread(values[idx].mean(axis=1), factor)
