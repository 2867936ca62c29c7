"""Kernel Inception Distance (Bińkowski et al. 2018): unbiased MMD² with a polynomial kernel, over random subsets.

    k(x, y) = (gamma x.y + coef)^degree,   gamma = 1 / D by default (degree 3, coef 1: the KID kernel)

    MMD²_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
             - 2 sum_{i, j} k(x_i, y_j) / (m n)

averaged over ``subsets`` pairs of subsets of ``subset_size`` rows drawn without replacement from each set
(torchmetrics, torch-fidelity and clean-fid default to 100 x 1000). With m = n this is torchmetrics'
``maximum_mean_discrepancy``. Unlike torchmetrics (which raises), a ``subset_size`` larger than a set is clamped to
that set's size, as clean-fid does; the size used is reported. Subsets come from a seeded ``np.random.Generator``,
never the global RNG.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eval_protocols.metrics.base import MetricResult, as_features
from eval_protocols.metrics.registry import MetricInputs, register_metric


def polynomial_kernel(
    x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None, coef: float = 1.0
) -> np.ndarray:
    """``(gamma x y^T + coef)^degree`` for ``x (m, D)``, ``y (n, D)`` (``gamma = 1 / D`` when None); ``(m, n)``."""
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    result: np.ndarray = (gamma * (x @ y.T) + coef) ** degree
    return result


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD² from kernels ``k_xx (m, m)``, ``k_yy (n, n)``, ``k_xy (m, n)`` (module docstring); m, n >= 2."""
    m, n = k_xx.shape[0], k_yy.shape[0]
    xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(xx + yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
    reference: Any,
    samples: Any,
    *,
    subsets: int = 100,
    subset_size: int = 1000,
    degree: int = 3,
    gamma: float | None = None,
    coef: float = 1.0,
    seed: int = 0,
) -> MetricResult:
    """KID between reference and sample features: mean and std of the unbiased MMD² over random subsets.

    A set no larger than ``subset_size`` is used whole in every subset pair, so with both sets that small all pairs are
    equal and ``std`` is 0.

    Args:
        reference: ``(N_ref, D)`` reference features.
        samples: ``(N, D)`` sample features.
        subsets: number of subset pairs.
        subset_size: rows per subset (clamped to each set's size).
        degree: polynomial degree.
        gamma: kernel scale; None means 1 / D.
        coef: kernel offset.
        seed: seed of the subset draws.

    Returns:
        ``MetricResult(name="kid")``: value = mean over subsets; details ``std``, ``subsets`` and the subset sizes used.

    Raises:
        ValueError: fewer than 2 rows in a set, mismatched dimensions, NaN rows, or ``subsets < 1``.
    """
    x = as_features(reference, "reference features", min_rows=2)
    y = as_features(samples, "sample features", min_rows=2, dim=x.shape[1])
    if subsets < 1 or subset_size < 2:
        raise ValueError(f"KID needs subsets >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
    rng = np.random.default_rng(seed)
    m, n = min(subset_size, len(x)), min(subset_size, len(y))
    values = np.empty(subsets)
    for s in range(subsets):
        xs = x[rng.choice(len(x), m, replace=False)]
        ys = y[rng.choice(len(y), n, replace=False)]
        values[s] = mmd2_unbiased(
            polynomial_kernel(xs, xs, degree, gamma, coef),
            polynomial_kernel(ys, ys, degree, gamma, coef),
            polynomial_kernel(xs, ys, degree, gamma, coef),
        )
    details = {
        "std": float(values.std()),
        "subsets": subsets,
        "subset_size_reference": m,
        "subset_size_samples": n,
        "n_reference": len(x),
    }
    return MetricResult("kid", float(values.mean()), len(y), higher_is_better=False, details=details)


KID_SUBSET_SIZE = 1000
"""KID's usual subset size (torchmetrics, torch-fidelity, clean-fid); smaller sets are used whole."""


def _kid_replicates(inputs: MetricInputs, idx: np.ndarray, ref_idx: np.ndarray | None) -> tuple[float, np.ndarray]:
    """KID of all rows and of each resample pair ``(idx[b], ref_idx[b])``, with subsets of `KID_SUBSET_SIZE` rows:
    one subset pair when both sets fit one subset (the value is then exact, no subset noise), else 10 (seed 0).

    Raises:
        ValueError: no ``ref_idx`` (the reference must be resampled too).
    """
    reference, samples = np.asarray(inputs.reference), np.asarray(inputs.samples)
    if ref_idx is None:
        raise ValueError("KID replicates need resampled reference rows (ref_idx); pass reference features")
    subsets = 1 if max(len(reference), len(samples)) <= KID_SUBSET_SIZE else 10

    def kid(i: np.ndarray, r: np.ndarray) -> float:
        return kernel_inception_distance(reference[r], samples[i], subsets=subsets, subset_size=KID_SUBSET_SIZE).value

    value = kid(np.arange(idx.shape[1]), np.arange(ref_idx.shape[1]))
    return value, np.array([kid(i, ref_idx[b]) for b, i in enumerate(idx)], dtype=np.float64)


@register_metric(
    "kid",
    higher_is_better=False,
    requires=("reference", "samples"),
    description="Kernel Inception Distance",
    replicates=_kid_replicates,
)
def _kid_metric(inputs: MetricInputs, **options: Any) -> list[MetricResult]:
    return [kernel_inception_distance(inputs.reference, inputs.samples, **options)]
