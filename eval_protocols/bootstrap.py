"""The seeded bootstrap of eval_protocols: how units are resampled and how replicates become an interval.

One module for every bootstrap of the project: metric intervals (`eval_protocols.metrics.bootstrap`), win-rate
intervals of human studies (`eval_protocols.human.intervals`) and the CI regression gate (replicates per metric and
the interval of a difference to a baseline). Every draw comes from a caller-seeded ``np.random.Generator``; the same
generator state gives the same numbers.

Resampling schemes (n units, B replicates):

- `resample_indices`: ``(B, n)`` unit indices drawn with replacement (any statistic of the resampled units);
- `stratified_indices`: ``(B, n)`` indices drawn with replacement *within* each stratum (e.g. the images of one
  prompt), so every replicate keeps each stratum's size;
- `cluster_multiplicities` / `cluster_mean_replicates`: whole clusters resampled with replacement, multiplicities
  ``c ~ Multinomial(G, 1/G)`` per cluster variable; with several variables (prompt and annotator) a cell's weight is
  the product of its clusters' multiplicities (Owen's pigeonhole bootstrap); the replicate is
  ``Σ_cells w S / Σ_cells w n`` with ``S``, ``n`` each cell's sum and size;
- `count_mean_replicates`: the i.i.d. bootstrap of a mean of few distinct values (votes s ∈ {0, ½, 1}), drawn as
  multinomial counts of the distinct values: the same distribution as resampling indices, O(B · distinct) memory.

Interval rules for replicates ``θ*_1..θ*_B`` of a statistic with point value ``θ̂`` and level ``1 − α``:

- `percentile_interval`: ``[q_{α/2}(θ*), q_{1−α/2}(θ*)]`` (Efron's percentile); NaN replicates are ignored;
- `basic_interval`: ``[2θ̂ − q_{1−α/2}(θ*), 2θ̂ − q_{α/2}(θ*)]`` (reverse percentile: carries a resampling bias,
  e.g. FD of a resample with repeated images running high, over to θ̂ with the opposite sign);
- `shifted_interval`: quantiles of ``θ* − mean(θ*) + θ̂`` (percentile interval moved to centre on θ̂);
- `difference_interval`: two independent runs (current and baseline), each with its own replicates; the worsening
  ``w = ±(θ̂_cur − θ̂_base)`` (sign by the metric's direction) and the quantiles ``[q_t, q_{1−t}]`` of
  ``w*_b − mean(w*) + w`` with ``w*_b = ±(θ*_cur,b − θ*_base,b)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


def check_resamples(n_resamples: int, confidence: float = 0.95) -> None:
    """Raise ValueError unless ``n_resamples >= 1`` and ``0 < confidence < 1``."""
    if n_resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n_resamples >= 1 and 0 < confidence < 1, got {n_resamples} and {confidence}")


# ------------------------------------------------------------------------------------------------ resampling


def resample_indices(n_units: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Unit indices drawn uniformly with replacement: ``int64 (n_resamples, n_units)`` in ``[0, n_units)``.

    Row b is replicate b. Drawing the rows one call at a time (``n_resamples=1`` each) gives the same indices as one
    call for all of them, so a loop over costly statistics need not hold every row at once.
    """
    result: np.ndarray = rng.integers(0, n_units, (n_resamples, n_units))
    return result


def stratified_indices(groups: Any, n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Rows resampled with replacement within each stratum: ``int64 (n_resamples, n)``.

    Args:
        groups: ``(n,)`` stratum label per row (e.g. prompt ids), or None for one stratum.
        n: number of rows.
        n_resamples: replicates B.
        rng: the seeded generator; strata draw one after another in first-seen label order.

    Returns:
        ``idx`` with ``idx[b, j]`` a row of the same stratum as row j (positions of a stratum stay its positions).
    """
    labels = np.zeros(n, dtype=np.int64) if groups is None else np.asarray(groups)
    out = np.empty((n_resamples, n), dtype=np.int64)
    for label in dict.fromkeys(labels.tolist()):
        rows = np.flatnonzero(labels == label)
        out[:, rows] = rows[rng.integers(0, len(rows), (n_resamples, len(rows)))]
    return out


def cluster_multiplicities(n_groups: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """How often each of G clusters is drawn when G are drawn with replacement: ``int64 (n_resamples, G)``, rows
    ``~ Multinomial(G, 1/G)`` (each row sums to G)."""
    result: np.ndarray = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_resamples)
    return result


def cluster_mean_replicates(
    cell_sums: Any, cell_sizes: Any, cell_codes: Any, n_resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Replicates of a mean when whole clusters are resampled (pigeonhole bootstrap for several cluster variables).

    The units are grouped into C cells, one per combination of cluster labels (one variable: the cells are the
    clusters). Per cluster variable k with ``G_k`` groups, multiplicities ``c_k ~ Multinomial(G_k, 1/G_k)`` are drawn
    (`cluster_multiplicities`, variables in column order); a cell's weight is ``w = Π_k c_k[code_k]`` and the
    replicate is ``Σ w S / Σ w n``.

    Args:
        cell_sums: ``(C,)`` sum of the values in each cell (S).
        cell_sizes: ``(C,)`` number of units in each cell (n > 0).
        cell_codes: ``int (C, K)`` group code of each cell per cluster variable, codes ``0..G_k − 1`` (G_k is the
            largest code + 1); the order of the codes decides which multiplicity goes to which group.
        n_resamples: replicates B.
        rng: the seeded generator.

    Returns:
        ``float64 (B,)``; NaN for a replicate whose weights are all 0 (possible with two or more variables).
    """
    sums = np.asarray(cell_sums, dtype=np.float64)
    sizes = np.asarray(cell_sizes, dtype=np.float64)
    codes = np.asarray(cell_codes, dtype=np.int64).reshape(len(sums), -1)
    weight = np.ones((n_resamples, len(sums)))
    for k in range(codes.shape[1]):
        n_groups = int(codes[:, k].max()) + 1
        weight *= cluster_multiplicities(n_groups, n_resamples, rng)[:, codes[:, k]]
    total = weight @ sizes
    with np.errstate(invalid="ignore", divide="ignore"):
        result: np.ndarray = np.where(total > 0, (weight @ sums) / np.where(total > 0, total, 1.0), np.nan)
    return result


def count_mean_replicates(values: Any, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates of the mean of ``values (n,)`` under i.i.d. resampling, drawn as counts of the distinct values.

    With distinct values ``v_j`` of frequencies ``f_j``, counts ``~ Multinomial(n, f/n)`` and the replicate is
    ``Σ_j count_j v_j / n``: float64 ``(B,)``. Suited to few distinct values (votes); for continuous values use
    `resample_indices`.
    """
    array = np.asarray(values, dtype=np.float64)
    distinct, counts = np.unique(array, return_counts=True)
    draws = rng.multinomial(array.size, counts / array.size, size=n_resamples).astype(np.float64)
    result: np.ndarray = draws @ distinct / array.size
    return result


def rescale_spread(replicates: np.ndarray, factor: float) -> np.ndarray:
    """Replicates with their deviations from their mean multiplied by ``factor`` (mean kept): ``(B,)``."""
    centre = replicates.mean()
    result: np.ndarray = centre + (replicates - centre) * factor
    return result


# --------------------------------------------------------------------------------------------------- intervals


def quantile_interval(replicates: Any, lower: float, upper: float) -> tuple[float, float]:
    """``(q_lower, q_upper)`` of the replicates (linear interpolation, NaN replicates ignored)."""
    low, high = np.nanquantile(np.asarray(replicates, dtype=np.float64), [lower, upper])
    return float(low), float(high)


def percentile_interval(replicates: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Efron's percentile interval ``(q_{α/2}, q_{1−α/2})`` of the replicates, ``α = 1 − confidence``."""
    alpha = 1.0 - confidence
    return quantile_interval(replicates, alpha / 2.0, 1.0 - alpha / 2.0)


def basic_interval(value: float, replicates: Any, confidence: float = 0.95) -> tuple[float, float]:
    """Basic (reverse-percentile) interval ``(2θ̂ − q_{1−α/2}, 2θ̂ − q_{α/2})`` around the point value θ̂."""
    q_low, q_high = percentile_interval(replicates, confidence)
    return 2 * value - q_high, 2 * value - q_low


def shifted_interval(value: float, replicates: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the replicates moved to mean θ̂: quantiles ``(1 ∓ confidence) / 2`` of
    ``θ* − mean(θ*) + θ̂``."""
    shifted = replicates - replicates.mean() + value
    low, high = np.quantile(shifted, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class DifferenceInterval:
    """How much worse a current run is than a baseline, with its bootstrap interval (`difference_interval`).

    Attributes:
        worse_by: ``w = θ̂_cur − θ̂_base`` for lower-is-better metrics, ``θ̂_base − θ̂_cur`` otherwise (> 0: worse).
        low: the ``tail`` quantile of the bias-shifted replicate differences.
        high: the ``1 − tail`` quantile.
    """

    worse_by: float
    low: float
    high: float


def difference_interval(
    current: float,
    current_replicates: np.ndarray,
    baseline: float,
    baseline_replicates: np.ndarray,
    *,
    higher_is_better: bool,
    tail: float,
) -> DifferenceInterval:
    """Interval of the worsening ``w`` of a current run against a baseline run, from independent replicates.

    ``w*_b = ±(θ*_cur,b − θ*_base,b)`` for the first ``min(B_cur, B_base)`` replicates samples the bootstrap
    distribution of the difference (the runs resampled independently); shifted by ``w − mean(w*)`` (removing the
    resampling bias of each run), its ``tail`` and ``1 − tail`` quantiles bound ``w``. For m comparisons at family
    level α, ``tail = α / m`` (Bonferroni, one-sided at each end).

    Args:
        current: θ̂ of the current run.
        current_replicates: ``(B,)`` its bootstrap replicates.
        baseline: θ̂ of the baseline run.
        baseline_replicates: ``(B',)`` its replicates.
        higher_is_better: the metric's direction (`eval_protocols.metrics.registry.MetricSpec.higher_is_better`).
        tail: probability in each tail, in (0, 0.5).
    """
    sign = -1.0 if higher_is_better else 1.0
    worse = sign * (current - baseline)
    b = min(len(baseline_replicates), len(current_replicates))
    diffs = sign * (current_replicates[:b] - baseline_replicates[:b])
    low, high = (float(v) for v in np.quantile(diffs - diffs.mean() + worse, [tail, 1.0 - tail]))
    return DifferenceInterval(float(worse), low, high)
